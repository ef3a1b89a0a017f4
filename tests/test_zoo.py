"""trace() on the architecture zoo (tests/zoo): never a crash, meta = real, exact parameter counts, the model
unchanged; plus one regression test per defect of issue 16.

For every zoo entry, one run (cached per entry, so each check is its own test) builds the model three
times from the same seed: once for the ground truth (a plain forward pass under `no_grad`, with forward
hooks recording every module call), once for `nbdebug.trace(model, *args)` and once for
`nbdebug.trace(model, *args, device="meta")`, each with a `tests/unchanged.py` snapshot before and the
differences after. The checks:

- `real` / `meta`: no exception escapes trace; `.error` is None, or for a model that fails on purpose
  (`raises_at`) names that step; for a model PyTorch itself cannot run on meta (`meta_unsupported`,
  confirmed by a plain meta forward pass failing too) the meta trace reports it in `.error` at a step.
- `real_shapes`: the root step's output shapes are the shapes of the tensors in the real output (found
  in any container, dataclass, plain object or distribution), and the module calls (name, order,
  output shapes) are the ones the forward hooks saw.
- `meta_shapes`: the meta trace's root output shapes are the real output's, and every step present in
  both traces has the same output shapes.
- `params`: `Trace.total_params` (real and meta) is the sum of the unique parameters' `numel()`.
- `unchanged_real` / `unchanged_meta`: `assert_unchanged` after each trace.

A failure found but not fixed yet is declared on the entry (`Entry.known`: check -> "issue N defect ..."
or "new defect ...") and runs as `xfail(strict=True)`: when a fix makes it pass, pytest reports
XPASS(strict) as a failure, and the mark comes off. Issue 16's defects (1-9) and the zoo's new ones (A-G)
are all fixed: no entry declares one. What PyTorch itself cannot do on meta is `meta_unsupported` (the
meta trace must then report it at a step) or, for a jit.trace'd module, `meta_nbdebug_error`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from tests import zoo
from tests.unchanged import Change, changes, snapshot

pytestmark = pytest.mark.slow  # the whole zoo: run by `make test`, not by `make check`

Shape = tuple[int, ...]

# ------------------------------------------------------------------------------------------------------
# ground truth helpers (independent of nbdebug's own walkers)


def tensor_leaves(obj: Any, _seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor in an output: containers, namedtuples, dataclasses, dicts (HF ModelOutput), and the
    public attributes of plain objects (a result object, a DynamicCache, a torch.distributions object),
    at any depth."""
    seen = set() if _seen is None else _seen
    if isinstance(obj, torch.Tensor):
        return [obj]
    if obj is None or isinstance(
        obj, (str, bytes, int, float, bool, complex, torch.dtype, torch.device, type)
    ):
        if not (isinstance(obj, int) and hasattr(obj, "__dict__")):  # an int subclass may carry tensors
            return []
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in tensor_leaves(v, seen)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensor_leaves(v, seen)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in tensor_leaves(getattr(obj, f.name, None), seen)]
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict) and not isinstance(obj, nn.Module):
        return [t for k, v in attrs.items() if not k.startswith("_") for t in tensor_leaves(v, seen)]
    return []


def shapes_of(obj: Any) -> list[Shape] | None:
    """The leaves' shapes; None when one is a nested tensor, which has no shape to compare."""
    leaves = tensor_leaves(obj)
    if any(t.is_nested for t in leaves):
        return None
    return [tuple(t.shape) for t in leaves]


def _multiset(shapes: list[Shape] | None) -> list[Shape]:
    return sorted(shapes or [])


def to_meta(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_meta(o) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_meta(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_meta(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(
            obj, **{f.name: to_meta(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        )
    return obj


def unique_param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def _is_script(m: nn.Module) -> bool:
    return isinstance(m, torch.jit.ScriptModule)


@dataclasses.dataclass
class Call:
    name: str
    parent: str | None
    shapes: list[Shape] | None = None
    comparable: bool = True  # False for a nested-tensor output (no shape)


def record_calls(model: nn.Module) -> tuple[list[Call], list[Any]]:
    """Forward pre/post hooks on every (non-script) module: the module calls in order, named as trace
    names them (first qualified name; '(call N)' from the second call on)."""
    names: dict[int, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), name or type(model).__name__)
    calls: list[Call] = []
    stack: list[Call] = []
    counts: Counter[int] = Counter()

    def pre(m, args):
        counts[id(m)] += 1
        name = names[id(m)] + (f" (call {counts[id(m)]})" if counts[id(m)] > 1 else "")
        call = Call(name, stack[-1].name if stack else None)
        calls.append(call)
        stack.append(call)

    def post(m, args, out):
        # registered with always_call=True: runs when the module raised too (a caught exception), so
        # the stack stays right; such a call (out is None) has no output to compare
        call = stack.pop()
        call.shapes = shapes_of(out) if out is not None else None
        call.comparable = call.shapes is not None

    handles = []
    for m in {id(m): m for m in model.modules()}.values():
        if _is_script(m) or isinstance(m, torch.jit.RecursiveScriptModule):
            continue
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post, always_call=True))
    return calls, handles


def script_types(model: nn.Module) -> set[str]:
    """How trace labels a ScriptModule's step (one opaque step: the hooks above never see it)."""
    return {f"{m.original_name} (TorchScript)" for m in model.modules() if _is_script(m)}


# ------------------------------------------------------------------------------------------------------
# one run per entry


@dataclasses.dataclass
class Run:
    entry: zoo.Entry
    expected_shapes: list[Shape] | None = None  # None when the real forward raised
    expected_error: str | None = None
    expected_params: int = 0
    calls: list[Call] | None = None
    script_types: set[str] = dataclasses.field(default_factory=set)
    control: list[Change] = dataclasses.field(default_factory=list)  # what the model's own forward changed
    real: nbdebug.Trace | None = None
    real_exc: BaseException | None = None
    real_changes: list[Change] = dataclasses.field(default_factory=list)
    meta: nbdebug.Trace | None = None
    meta_exc: BaseException | None = None
    meta_changes: list[Change] = dataclasses.field(default_factory=list)
    plain_meta_error: str | None = None
    seconds: float = 0.0


_RUNS: dict[str, Run] = {}


def _trace(model: nn.Module, args: tuple, kwargs: dict, **kw: Any) -> tuple[Any, BaseException | None]:
    try:
        return nbdebug.trace(model, *args, **kw, **kwargs), None
    except Exception as e:  # an escaped exception is what the `real`/`meta` checks report
        return None, e


def run_of(entry: zoo.Entry) -> Run:
    for req in entry.requires:
        pytest.importorskip(req)
    if entry.name in _RUNS:
        return _RUNS[entry.name]
    t0 = time.perf_counter()
    run = Run(entry)
    # 1. ground truth: a plain forward pass, every module call recorded by hooks
    model, args, kwargs = zoo.build(entry)
    run.script_types = script_types(model)
    before = snapshot(model)
    calls, handles = record_calls(model)
    try:
        with torch.no_grad():
            out = model(*args, **kwargs)
        run.expected_shapes = shapes_of(out)
        run.calls = calls
    except Exception as e:
        run.expected_error = f"{type(e).__name__}: {e}"
    finally:
        for h in handles:
            h.remove()
    run.expected_params = unique_param_count(model)
    run.control = changes(model, before)
    del model
    # 2. the real trace
    model, args, kwargs = zoo.build(entry)
    before = snapshot(model)
    run.real, run.real_exc = _trace(model, args, kwargs)
    run.real_changes = changes(model, before)
    # 3. the meta trace
    model, args, kwargs = zoo.build(entry)
    before = snapshot(model)
    run.meta, run.meta_exc = _trace(model, args, kwargs, device="meta")
    run.meta_changes = changes(model, before)
    # 4. for entries PyTorch cannot run on meta: confirm with a plain meta forward pass
    if entry.meta_unsupported:
        model, args, kwargs = zoo.build(entry)
        try:
            with torch.no_grad():
                model.to("meta")(*to_meta(args), **to_meta(kwargs))
        except Exception as e:
            run.plain_meta_error = f"{type(e).__name__}: {e}"
    run.seconds = time.perf_counter() - t0
    _RUNS[entry.name] = run
    return run


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models: one intra-op thread is 10-50x faster than two on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _params(check: str) -> list[Any]:
    out = []
    for e in zoo.ZOO:
        marks = [pytest.mark.xfail(strict=True, reason=e.known[check])] if check in e.known else []
        if "slow" in e.tags:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(e, id=e.name, marks=marks))
    return out


def _escaped(exc: BaseException | None, what: str) -> None:
    if exc is not None:
        pytest.fail(f"{what} raised {type(exc).__name__}: {str(exc)[:500]}")


def _error_names_a_step(t: nbdebug.Trace) -> None:
    assert t.error is not None
    assert t.error.step is not None, f"the error names no step: {t.error}"
    step = t.steps[t.error.step]
    assert t.error.where == step.name and step.status == "error", (t.error.where, step.name, step.status)


# ------------------------------------------------------------------------------------------------------
# the checks


@pytest.mark.parametrize("entry", _params("real"))
def test_real(entry: zoo.Entry) -> None:
    run = run_of(entry)
    _escaped(run.real_exc, "trace(model, ...)")
    t = run.real
    if entry.raises_at:
        assert run.expected_error is not None, "the entry says the model fails, but its forward pass works"
        assert t.error is not None, "the model raises, but the trace has no error"
        _error_names_a_step(t)
        assert t.error.where == entry.raises_at, (
            f"failure reported at {t.error.where!r}, not {entry.raises_at!r}"
        )
    else:
        assert run.expected_error is None, f"the zoo model itself fails: {run.expected_error}"
        assert t.error is None, str(t.error)


@pytest.mark.parametrize("entry", _params("real_shapes"))
def test_real_shapes(entry: zoo.Entry) -> None:
    run = run_of(entry)
    if entry.raises_at:
        pytest.skip("the model fails on purpose: no output")
    _escaped(run.real_exc, "trace(model, ...)")
    t = run.real
    assert t.error is None, str(t.error)
    root = t.steps[0]
    assert _multiset(root.output_shapes) == _multiset(run.expected_shapes), (
        f"root output shapes {root.output_shapes} != the real output's {run.expected_shapes}"
    )
    steps = [s for s in t.steps if s.kind == "module" and s.type not in run.script_types]
    got = [
        (s.name, t.steps[s.parent].name if s.parent is not None else None,
         _multiset(s.output_shapes) if c.comparable else "-")
        for s, c in zip(steps, run.calls)
    ] + [(s.name, "?", "?") for s in steps[len(run.calls):]]  # fmt: skip
    want = [(c.name, c.parent, _multiset(c.shapes) if c.comparable else "-") for c in run.calls]
    if got != want:
        missing = [w for w in want if w not in got][:5]
        extra = [g for g in got if g not in want][:5]
        pytest.fail(
            f"module calls (name, parent, output shapes) differ from what forward hooks saw ({len(got)} "
            f"traced, {len(want)} real); expected but not traced: {missing}; traced instead: {extra}"
        )


@pytest.mark.parametrize("entry", _params("meta"))
def test_meta(entry: zoo.Entry) -> None:
    run = run_of(entry)
    if entry.meta_nbdebug_error:
        assert isinstance(run.meta_exc, NbdebugError), (
            f"expected a clear NbdebugError ({entry.meta_nbdebug_error}); got "
            + (f"{type(run.meta_exc).__name__}: {run.meta_exc}" if run.meta_exc else f"a trace: {run.meta!r}")
        )
        return
    _escaped(run.meta_exc, 'trace(model, ..., device="meta")')
    t = run.meta
    if entry.meta_unsupported:
        assert run.plain_meta_error is not None, (
            "the entry says PyTorch cannot run it on meta, but a plain meta forward pass works: "
            "remove meta_unsupported"
        )
        assert t.error is not None, "a plain meta forward pass fails, but the meta trace reports no error"
        _error_names_a_step(t)
    elif entry.raises_at:
        assert t.error is not None, "the model raises, but the meta trace has no error"
        _error_names_a_step(t)
        assert t.error.where == entry.raises_at, (
            f"failure reported at {t.error.where!r}, not {entry.raises_at!r}"
        )
    else:
        assert t.error is None, str(t.error)


@pytest.mark.parametrize("entry", _params("meta_shapes"))
def test_meta_shapes(entry: zoo.Entry) -> None:
    run = run_of(entry)
    if entry.raises_at or entry.meta_unsupported or entry.meta_nbdebug_error:
        pytest.skip("no meta output to compare")
    _escaped(run.meta_exc, 'trace(model, ..., device="meta")')
    t = run.meta
    assert t.error is None, str(t.error)
    assert _multiset(t.steps[0].output_shapes) == _multiset(run.expected_shapes), (
        f"meta root output shapes {t.steps[0].output_shapes} != the real output's {run.expected_shapes}"
    )
    _escaped(run.real_exc, "trace(model, ...)")
    real = _by_occurrence(run.real.steps)
    differ = [
        (key, shapes, real[key])
        for key, shapes in _by_occurrence(t.steps).items()
        if key in real and shapes != real[key]
    ]
    assert not differ, f"steps whose meta shapes differ from the real trace's: {differ[:5]}"


def _by_occurrence(steps: list[nbdebug.Step]) -> dict[tuple[str, str, int], list[Shape]]:
    """Steps keyed by (name, type, n-th step of that name and type): function steps repeat names."""
    seen: Counter[tuple[str, str]] = Counter()
    out = {}
    for s in steps:
        seen[(s.name, s.type)] += 1
        out[(s.name, s.type, seen[(s.name, s.type)])] = _multiset(s.output_shapes)
    return out


@pytest.mark.parametrize("entry", _params("params"))
def test_params(entry: zoo.Entry) -> None:
    run = run_of(entry)
    _escaped(run.real_exc, "trace(model, ...)")
    assert run.real.total_params == run.expected_params
    if not entry.meta_nbdebug_error:
        _escaped(run.meta_exc, 'trace(model, ..., device="meta")')
        assert run.meta.total_params == run.expected_params


def _unexplained(entry: zoo.Entry, found: list[Change], control: list[Change]) -> list[Change]:
    """Lazy modules initialize themselves on their first call: the same changes a plain forward pass
    makes are the model's own (as long as nothing is left on meta); everything else is trace's."""
    if "lazy" not in entry.tags:
        return found
    own = {c.key for c in control}
    return [c for c in found if c.key not in own or c.now_on_meta]


@pytest.mark.parametrize("entry", _params("unchanged_real"))
def test_unchanged_real(entry: zoo.Entry) -> None:
    run = run_of(entry)
    left = _unexplained(entry, run.real_changes, run.control)
    assert not left, "trace(model, ...) changed the model:\n" + "\n".join(map(str, left[:30]))


@pytest.mark.parametrize("entry", _params("unchanged_meta"))
def test_unchanged_meta(entry: zoo.Entry) -> None:
    run = run_of(entry)
    left = _unexplained(entry, run.meta_changes, run.control)
    assert not left, 'trace(model, ..., device="meta") changed the model:\n' + "\n".join(map(str, left[:30]))


# ------------------------------------------------------------------------------------------------------
# the zoo itself


REQUIRED_HF = (
    "bert", "gpt2", "t5", "bart", "llama", "mistral", "vit", "clip", "whisper", "wav2vec2", "distilbert",
    "roberta", "albert", "electra", "deberta_v2", "gpt_neo", "opt", "bloom", "falcon", "qwen2", "swin",
    "convnext", "resnet", "segformer", "mobilebert",
)  # fmt: skip


def test_zoo_covers_the_issue() -> None:
    names = [e.name for e in zoo.ZOO]
    assert len(names) == len(set(names)) and len(names) >= 65, len(names)
    for e in zoo.ZOO:
        assert e.source and e.tags & {"hf", "builtin", "classic", "torchinfo", "hard"}, e.name
        assert ("hf" in e.tags) == (e.requires == ("transformers",)), e.name
        for check, reason in e.known.items():
            assert reason.startswith(("issue 16 defect", "new defect")), (e.name, check, reason)
    for model in REQUIRED_HF:
        assert f"hf_{model}" in names, model
    tags = Counter(t for e in zoo.ZOO for t in e.tags)
    for needed in ("jit", "compile", "lazy", "pruning", "parametrization", "shared", "tied", "hooks", "rnn",
                   "packed", "dataclass", "namedtuple", "dict_input", "nested_output", "plain_object",
                   "distribution", "factory", "exception", "dtype", "torchinfo", "classic"):  # fmt: skip
        assert tags[needed], needed


def test_zoo_needs_transformers_only_for_hf_entries() -> None:
    """nbdebug and the non-HF zoo import and build without transformers or hypothesis."""
    code = (
        "import sys; sys.modules['transformers'] = None; sys.modules['hypothesis'] = None\n"
        "import nbdebug, torch\n"
        "from tests import zoo\n"
        "for e in zoo.ZOO:\n"
        "    if 'hf' not in e.tags and 'compile' not in e.tags:\n"
        "        zoo.build(e)\n"
        "t = nbdebug.trace(torch.nn.Linear(2, 3), torch.randn(1, 2))\n"
        "print('ok', t.ok)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(zoo_root()))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok True" in out.stdout


def zoo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_hf_entries_are_skipped_without_transformers(monkeypatch) -> None:
    """`run_of` asks pytest.importorskip for each requirement, so a missing transformers is a skip."""
    entry = zoo.get("hf_bert")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(pytest.skip.Exception):
        run_of(dataclasses.replace(entry, name="hf_bert_without_transformers"))


# ------------------------------------------------------------------------------------------------------
# one regression test per defect of issue 16 (the issue's minimal reproductions)


def test_defect1_shared_module_keeps_real_weights_after_meta_trace() -> None:
    lin = nn.Linear(10, 10)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    t = nbdebug.trace(model, torch.randn(2, 10), device="meta")
    assert t.ok
    assert lin.weight.device.type == "cpu" and lin.bias.device.type == "cpu"
    assert model(torch.randn(2, 10)).shape == (2, 10)  # the model still runs


class _TiedCheck(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight
        self.tied_in_forward: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tied_in_forward.append(self.head.weight is self.emb.weight)
        return self.head(self.emb(x))


def test_defect1_guard_tied_weights_stay_tied_on_meta() -> None:
    """Today's behaviour to keep through the defect 1 fix: genuinely tied parameters stay tied on meta."""
    model = _TiedCheck()
    t = nbdebug.trace(model, torch.randint(0, 10, (2, 3)), device="meta")
    assert t.ok and model.tied_in_forward == [True]
    assert model.head.weight is model.emb.weight and model.emb.weight.device.type == "cpu"


def test_defect1_meta_weights_swaps_each_slot_once_and_puts_the_same_objects_back() -> None:
    """The swap behind the meta trace and memory.step's meta runs (nbdebug._core.hooks.MetaWeights)."""
    from torch.nn.utils import prune

    from nbdebug._core.hooks import MetaWeights

    lin, gru = nn.Linear(4, 4), nn.GRU(4, 4)
    tied = _TiedCheck()
    prune.l1_unstructured(lin, "weight", 0.5)
    model = nn.ModuleDict({"a": lin, "b": lin, "gru": gru, "tied": tied})
    params = {n: p for n, p in model.named_parameters(remove_duplicate=False)}
    pruned_weight = lin.weight
    with MetaWeights(model):
        assert all(p.device.type == "meta" for p in model.parameters())
        assert all(w.device.type == "meta" for w in gru._flat_weights)
        assert tied.head.weight is tied.emb.weight  # one twin per tensor: still tied
        assert lin(torch.randn(2, 4, device="meta")).device.type == "meta"  # the pruning hook ran on meta
        assert lin.weight.device.type == "meta"
    after = dict(model.named_parameters(remove_duplicate=False))
    assert after.keys() == params.keys() and all(after[n] is p for n, p in params.items())
    assert lin.weight is pruned_weight and all(w.device.type == "cpu" for w in gru._flat_weights)


def test_defect2_pruned_weight_is_real_after_meta_trace() -> None:
    from torch.nn.utils import prune

    layer = nn.Linear(4, 2)
    prune.l1_unstructured(layer, "weight", 0.5)
    nbdebug.trace(layer, torch.randn(3, 4), device="meta")
    assert layer.weight.device.type == "cpu"
    assert layer(torch.randn(3, 4)).shape == (3, 2)


def test_defect3_script_module_is_an_opaque_step() -> None:
    scripted = torch.jit.script(nn.Linear(4, 2))
    t = nbdebug.trace(scripted, torch.randn(3, 4))
    assert t.ok and t.steps[0].input_shapes == [(3, 4)] and t.steps[0].output_shapes == [(3, 2)]

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = torch.jit.script(nn.Linear(4, 2))
            self.out = nn.Linear(2, 1)

        def forward(self, x):
            return self.out(self.inner(x))

    t = nbdebug.trace(Holder(), torch.randn(3, 4))
    assert t.ok and t["inner"].output_shapes == [(3, 2)] and t["out"].output_shapes == [(3, 1)]


def test_defect3_jit_traced_model_on_meta_gets_a_clear_nbdebug_error() -> None:
    traced, x = torch.jit.trace(nn.Linear(4, 2), torch.randn(3, 4)), torch.randn(3, 4)
    before = snapshot(traced)
    with pytest.raises(NbdebugError, match=r"the model \(TopLevelTracedModule\) was made by torch.jit.trace"):
        nbdebug.trace(traced, x, device="meta")
    assert not changes(traced, before)
    # why: the graph keeps the device it was traced on, even for device=x.device
    graph = str(torch.jit.trace(_MakesZeros(), torch.randn(2, 4)).graph)
    assert 'Device = prim::Constant[value="cpu"]' in graph


class _MakesZeros(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.zeros(x.shape[0], 4, device=x.device)


def test_defect3_jit_traced_submodule_on_meta_is_named() -> None:
    model = zoo.build(zoo.get("hard_jit_inside"))[0]
    with pytest.raises(NbdebugError, match=r"^features \(TopLevelTracedModule\) was made by torch.jit.trace"):
        nbdebug.trace(model, torch.randn(2, 3, 10, 10), device="meta")


def test_defect3_scripted_model_on_meta_is_an_opaque_step() -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    t = nbdebug.trace(scripted, torch.randn(3, 4), device="meta")
    assert t.ok and len(t.steps) == 1 and t.steps[0].output_shapes == [(3, 2)]
    assert t.steps[0].type == "Sequential (TorchScript)" and t.total_params == 4 * 8 + 8 + 8 * 2 + 2
    assert all(p.device.type == "cpu" for p in scripted.parameters())


def test_defect4_lazy_module_is_traced_and_counted() -> None:
    model = nn.Sequential(nn.LazyLinear(3))
    t = nbdebug.trace(model, torch.randn(2, 5))
    assert t.ok and t.steps[0].output_shapes == [(2, 3)]
    assert t.total_params == 5 * 3 + 3 and t.steps[1].params == 5 * 3 + 3
    assert type(model[0]) is nn.Linear  # initialized, as by its first call


def test_defect4_lazy_module_on_meta_is_initialized_with_real_weights() -> None:
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(), nn.LazyLinear(2))
    t = nbdebug.trace(model, torch.randn(2, 3, 6, 6), device="meta")
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(2, 2)] and t.total_params == (4 * 3 * 9 + 4) + 2 * 4 + (64 * 2 + 2)
    assert all(p.device.type == "cpu" for p in (*model.parameters(), *model.buffers()))
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 2)


def test_defect5_packed_sequence_input_on_meta() -> None:
    from torch.nn.utils.rnn import pack_padded_sequence

    lstm = nn.LSTM(4, 8)
    packed = pack_padded_sequence(torch.randn(5, 2, 4), torch.tensor([5, 3]))
    real = nbdebug.trace(lstm, packed)
    meta = nbdebug.trace(lstm, packed, device="meta")
    assert meta.ok and meta.steps[0].output_shapes == real.steps[0].output_shapes


def test_defect5_pack_padded_sequence_inside_forward_on_meta() -> None:
    from torch.nn.utils.rnn import pack_padded_sequence

    class Packs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 8)

        def forward(self, x, lengths):
            _, (h, _) = self.lstm(pack_padded_sequence(x, lengths))
            return h

    t = nbdebug.trace(Packs(), torch.randn(5, 2, 4), torch.tensor([5, 3]), device="meta")
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(1, 2, 8)]


class _Defect6(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 4, 3)
        s.fc = nn.Linear(12, 2)

    def forward(s, x):
        try:
            x = s.conv(x)
        except RuntimeError:
            x = x.repeat(1, 3, 1, 1)
        return s.fc(torch.flatten(x, 1)[:, :12])


def test_defect6_caught_exception_keeps_recording() -> None:
    t = nbdebug.trace(_Defect6(), torch.randn(2, 1, 2, 2))
    assert t.ok
    types = [s.type for s in t.steps if s.kind == "function"]
    assert "Tensor.repeat" in types and "torch.flatten" in types, types
    fc = t["fc"]
    assert fc.parent == 0 and fc.depth == 1  # not nested under conv, which raised
    assert t["conv"].status == "caught" and t["conv"].output_repr == "raised RuntimeError"
    assert t.steps[0].output_shapes == [(2, 2)]
    assert "x    conv" in t.to_text()


def test_defect7_failure_names_the_failing_step_not_a_caught_one() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            try:
                x.view(3, -1)
            except RuntimeError:
                pass
            return self.head(x)

    t = nbdebug.trace(M(), torch.randn(2, 5))
    assert t.error is not None and t.error.where == "head"


@pytest.mark.slow
def test_defect8_compiled_model_is_traced() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    compiled = torch.compile(model, backend="eager")
    assert compiled(torch.randn(3, 4)).shape == (3, 2)
    t = nbdebug.trace(compiled, torch.randn(3, 4))
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(3, 2)]
    assert [s.name for s in t.steps if s.kind == "module"][:3] == [
        "OptimizedModule",
        "_orig_mod",
        "_orig_mod.0",
    ]
    meta = nbdebug.trace(compiled, torch.randn(3, 4), device="meta")
    assert meta.ok and meta.steps[0].output_shapes == [(3, 2)]

    class Holder(nn.Module):  # a compiled submodule, and a compiled function in forward
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.compile(nn.Linear(4, 4), backend="eager")
            self.act = torch.compile(torch.tanh, backend="eager")

        def forward(self, x):
            return self.act(self.body(x))

    t = nbdebug.trace(Holder(), torch.randn(3, 4))
    assert t.ok and t["body._orig_mod"].output_shapes == [(3, 4)], t.to_text()


def test_defect9_outputs_nested_deeper_than_6_keep_their_shapes() -> None:
    class Deep(nn.Module):
        def forward(self, x):
            out = x * 2
            for _ in range(8):
                out = [out]
            return out

    t = nbdebug.trace(Deep(), torch.randn(2, 3))
    assert t.steps[0].output_shapes == [(2, 3)]


def test_defect9_tensors_inside_plain_objects_get_shapes() -> None:
    class Result:
        def __init__(self, boxes):
            self.boxes = boxes

    class M(nn.Module):
        def forward(self, x):
            return Result(x * 2)

    t = nbdebug.trace(M(), torch.randn(2, 4))
    assert t.steps[0].output_shapes == [(2, 4)]


def test_defect9_distribution_outputs_get_shapes() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x):
            return torch.distributions.Categorical(logits=self.lin(x))

    t = nbdebug.trace(M(), torch.randn(2, 4))
    assert (2, 3) in (t.steps[0].output_shapes or [])


def test_defect9_factory_call_without_device_on_meta() -> None:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(5, 5)

        def forward(self, x):
            return self.lin(x + torch.ones(x.shape[-1]))

    t = nbdebug.trace(M(), torch.randn(2, 5), device="meta")
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(2, 5)]


# -- the zoo's new defects (not in issue 16), one minimal reproduction each --------------------------------


def test_new_defect_a_prehook_attribute_restored_after_real_trace() -> None:
    conv = nn.utils.spectral_norm(nn.Conv2d(3, 4, 3))  # train mode: each forward runs a power iteration
    before = conv.weight.clone()
    nbdebug.trace(conv, torch.randn(2, 3, 8, 8))
    assert torch.equal(conv.weight, before)


def test_new_defect_b_rnn_flat_weights_real_after_meta_trace() -> None:
    gru = nn.GRU(8, 16)
    nbdebug.trace(gru, torch.randn(5, 2, 8), device="meta")
    assert all(w.device.type == "cpu" for w in gru._flat_weights)


def test_new_defect_c_nested_tensor_between_layers() -> None:
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2).eval()
    mask = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    t = nbdebug.trace(enc, torch.randn(2, 5, 16), src_key_padding_mask=mask)
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(2, 5, 16)]
    # between the layers, the fast path passes a nested tensor: ragged sequence length shown as *
    assert t["layers.0"].input_shapes == [(2, None, 16)] and t["layers.0"].input_repr == "(2, *, 16)"


def test_new_defect_c_a_failing_hook_is_a_note_never_the_models_error(monkeypatch) -> None:
    from nbdebug.shapes import record

    def broken(obj, depth=0):
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(record, "_struct", broken)
    lstm = nn.LSTM(4, 8)  # outputs a tuple: the post-hook reads its structure
    t = nbdebug.trace(lstm, torch.randn(5, 2, 4))
    assert t.ok and t.error is None
    assert t.notes and "nbdebug could not record the output of LSTM: RuntimeError: recorder bug" in t.notes[0]
    assert "Note: nbdebug could not record" in t.to_text()


def test_new_defect_d_data_parallel_on_meta() -> None:
    t = nbdebug.trace(nn.DataParallel(nn.Linear(4, 2)), torch.randn(3, 4), device="meta")
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(3, 2)]


@dataclasses.dataclass
class _Batch:
    x: torch.Tensor


class _TakesBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, b: _Batch) -> torch.Tensor:
        return self.lin(b.x)


def test_new_defect_e_dataclass_input_on_meta() -> None:
    t = nbdebug.trace(_TakesBatch(), _Batch(torch.randn(3, 4)), device="meta")
    assert t.ok, str(t.error)
    assert t.steps[0].output_shapes == [(3, 2)]


def test_new_defect_f_weights_written_in_forward_are_restored() -> None:
    emb = nn.Embedding(10, 4, max_norm=1.0)
    with torch.no_grad():
        emb.weight.mul_(5)
    before = emb.weight.detach().clone()
    nbdebug.trace(emb, torch.tensor([[1, 2, 3]]))
    assert torch.equal(emb.weight, before)


def test_new_defect_g_error_in_a_user_pre_hook_names_the_module() -> None:
    def validate(module, args):
        if args[0].shape[-1] != 4:
            raise ValueError("expected 4 features")

    model = nn.Sequential(nn.Linear(4, 2))
    model.register_forward_pre_hook(validate)
    t = nbdebug.trace(model, torch.randn(3, 5))
    assert t.error is not None and t.error.message == "expected 4 features"
    assert t.error.step == 0 and t.steps[0].status == "error"
    assert "inputs' types and count" not in t.error.hint
    assert t.error.hint.startswith("the forward pre-hook")
    assert "validate registered on Sequential raised before its forward ran" in t.error.hint


def test_meta_hint_says_meta_tensors_have_no_values() -> None:
    """What PyTorch cannot do on meta (zoo: meta_unsupported) is reported at a step, with the reason."""
    model, args, _ = zoo.build(zoo.get("hard_value_dependent"))
    with pytest.raises(RuntimeError, match="cannot be called on meta tensors"):
        model.to("meta")(*(a.to("meta") for a in args))
    model, args, _ = zoo.build(zoo.get("hard_value_dependent"))
    t = nbdebug.trace(model, *args, device="meta")
    assert t.error is not None and t.error.where == "_Branchy"
    assert "tensors have shapes but no values" in t.error.hint and ".item()" in t.error.hint


def test_zoo_transformers_pin_is_installed_when_available() -> None:
    """The pinned test extra (constraints.txt) is what the HF entries were sized against."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers not installed")
    import transformers

    pins = (zoo_root() / "constraints.txt").read_text()
    assert f"transformers=={transformers.__version__}" in pins, transformers.__version__
