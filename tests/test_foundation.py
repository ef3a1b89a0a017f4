"""The shared machinery every feature relies on: state restore, hooks, findings, data, package entry."""

from __future__ import annotations

import importlib
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nbdebug
from nbdebug import CATALOGUE, Finding, NbdebugError
from nbdebug._core.data import collect, iter_batches, split_batch
from nbdebug._core.findings import findings_html, findings_text, worst
from nbdebug._core.hooks import HookSet, hook_counts, preserved
from nbdebug._core.tensors import stack_floats
from tests.models import SmallCNN


def _train_step(model, opt, x):
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


@pytest.mark.slow
@pytest.mark.parametrize("outcome", ["success", "exception", "interrupt"])
def test_preserved_restores_weights_grads_optimizer_rng_modes(outcome):
    model = SmallCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randn(4, 1, 14, 14)
    _train_step(model, opt, x)  # optimizer has state, params have grads
    model.eval()
    model.fc.weight.requires_grad_(False)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    opt_state = opt.state_dict()["state"][0]["exp_avg"].clone()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    hooks = hook_counts(model)

    class Boom(Exception):
        pass

    def body():
        with preserved(model, weights=True, grads=True, optimizers=(opt,)), HookSet() as hs:
            hs.forward(model.conv, lambda *a: None)
            model.train()
            model.fc.weight.requires_grad_(True)
            _train_step(model, opt, x)
            torch.rand(3), random.random(), np.random.rand()
            if outcome == "exception":
                raise Boom
            if outcome == "interrupt":
                raise KeyboardInterrupt

    if outcome == "success":
        body()
    else:
        with pytest.raises(Boom if outcome == "exception" else KeyboardInterrupt):
            body()
    assert hook_counts(model) == hooks
    assert not model.training and not any(m.training for m in model.modules())
    assert not model.fc.weight.requires_grad
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for n, p in model.named_parameters():
        if n in grads:
            assert torch.equal(p.grad, grads[n]), n
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt_state)
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2])


def test_preserved_keeps_the_same_parameter_objects():
    model = nn.Linear(3, 3)
    w = model.weight
    with preserved(model, weights=True):
        model.weight.data.mul_(0)
    assert model.weight is w and w.abs().sum() > 0


def test_catalogue_codes_have_threshold_and_public_source_and_are_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("<!-- findings:start -->")[1].split("<!-- findings:end -->")[0]
    for code, info in CATALOGUE.items():
        assert info.threshold and info.source, code
        assert f"| `{code}` |" in table, code
        # a reader must be able to open the source: no private notes, issue numbers or local files
        assert not re.search(r"practitioner|issue \d|DESIGN|shared/", info.source, flags=re.I), code


def test_finding_validates_and_renders():
    f = Finding(
        "initial-loss", "warning", "initial loss 4.6, expected 2.30", "check the last layer", where="fc"
    )
    assert "initial-loss" in str(f) and "fc" in str(f)
    assert "initial-loss" in findings_html([f]) and "check the last layer" in findings_text([f])
    assert worst([f, Finding("sigmoid-bceloss", "info", "m", "h")]) == "warning"
    assert findings_text([]) == "No findings."
    with pytest.raises(ValueError, match="unknown finding code"):
        Finding("no-such-code", "error", "m", "h")
    with pytest.raises(ValueError, match="severity"):
        Finding("initial-loss", "fatal", "m", "h")


def test_data_accepts_every_documented_form():
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))
    forms = [
        (x, y),
        TensorDataset(x, y),
        DataLoader(TensorDataset(x, y), batch_size=4),
        [(x[:5], y[:5]), (x[5:], y[5:])],
    ]
    for data in forms:
        xs, ys = collect(data, n=7)
        assert xs[0].shape == (7, 3) and ys.shape == (7,)
        assert torch.equal(xs[0], x[:7])
    assert split_batch({"image": x, "label": y})[2] is y
    assert len(list(iter_batches(x, batch_size=4))) == 3
    with pytest.raises(NbdebugError, match="cannot read a batch of type int"):
        split_batch(3)
    # (x, y) of different lengths is a mistake, not two batches: named before anything reads it
    with pytest.raises(NbdebugError, match=r"x Tensor\(10, 3\).* and y Tensor\(9,\)"):
        collect((x, y[:9]))
    # batches of one kind (same shape after the first dimension, same dtype) are a sequence of batches
    assert [len(b) for b in iter_batches([x[:6], x[6:]])] == [6, 4]
    assert [len(b) for b in iter_batches((y[:6], y[6:]))] == [6, 4]


def test_public_names_and_extension_entry():
    assert callable(nbdebug.trace) and callable(nbdebug.shapes)
    # importing a feature package (nbdebug/shapes/, nbdebug/memory/, ...) must not shadow the public
    # function of the same name
    for module in (
        "nbdebug.shapes.trace",
        "nbdebug.memory.report",
        "nbdebug.search.run",
        "nbdebug.predictions.report",
    ):
        importlib.import_module(module)
    assert callable(nbdebug.trace) and nbdebug.trace.__name__ == "trace"
    assert nbdebug.shapes.__name__ == "shapes" and nbdebug.search.__name__ == "search"
    assert callable(nbdebug.memory) and callable(nbdebug.memory.step) and callable(nbdebug.predictions)
    assert callable(nbdebug.load_ipython_extension)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nbdebug.nope  # noqa: B018


def test_load_ext_registers_every_documented_magic(ip):
    line = set(ip.magics_manager.magics["line"])
    cell = set(ip.magics_manager.magics["cell"])
    for name in (
        "nn_shapes",
        "nn_mem",
        "nn_overfit",
        "nn_check",
        "nn_gradcheck",
        "nn_preds",
        "nn_filters",
        "nn_search",
    ):
        assert name in line, name
    assert {"nn_watch", "nn_gan"} <= cell


def test_every_public_name_resolves():
    for name in nbdebug.__all__:
        assert getattr(nbdebug, name) is not None, name


def test_core_never_imports_ipython_or_ipywidgets():
    root = Path(nbdebug.__file__).parent
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if Path(rel).stem.endswith(("plot", "panel", "magic")):
            continue
        src = path.read_text()
        assert not re.search(r"^\s*(import|from) (IPython|ipywidgets)", src, flags=re.M), rel


def test_preserved_restores_norm_statistics_a_feature_updated_after_switching_to_train():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with preserved(model):
        model.train()
        model(torch.randn(8, 1, 6, 6) * 5 + 3)  # updates running_mean / running_var in place
    assert not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_stack_floats_converts_only_what_differs():
    """Scalars read in one batch: float32 0-dim values are stacked as they are; half precision, a
    one-element vector and a value that still requires a gradient are made float32 0-dim first."""
    a, b = torch.tensor(1.5), torch.tensor(2.5)
    out = stack_floats([a, b])
    assert out.dtype == torch.float32 and out.tolist() == [1.5, 2.5]
    w = torch.tensor([3.0], requires_grad=True)
    mixed = stack_floats([torch.tensor(0.5, dtype=torch.float16), w * 2, a])
    assert mixed.dtype == torch.float32 and mixed.shape == (3,) and not mixed.requires_grad
    assert mixed.tolist() == [0.5, 6.0, 1.5]
    # a leak flag (bool) or a count (int64) next to float32 values: converted one by one, the others as they are
    flags = stack_floats([torch.tensor(True), a, torch.tensor(3), torch.tensor(2.0, requires_grad=True)])
    assert flags.dtype == torch.float32 and flags.tolist() == [1.0, 1.5, 3.0, 2.0] and not flags.requires_grad


def test_a_paused_hook_is_not_called_resumes_after_the_users_and_is_removed_with_the_set():
    """HookSet.pause takes a hook out of its module (the module's fast call path) and resume puts it back
    last, as a new registration would; `remove` removes it whether paused or not, and leaves the user's."""
    model = nn.Linear(2, 2)
    calls: list[str] = []
    hs = HookSet()
    ours = hs.forward(model, lambda *a: calls.append("ours"))
    hs.pause([ours])
    assert not model._forward_hooks
    model(torch.ones(1, 2))
    assert calls == []
    users = model.register_forward_hook(lambda *a: calls.append("user"))
    hs.resume([ours])
    hs.resume([ours])  # resuming twice is resuming once
    model(torch.ones(1, 2))
    assert calls == ["user", "ours"]
    hs.pause([ours])
    hs.remove()  # a paused hook does not come back after the set is removed
    hs.resume([ours])
    model(torch.ones(1, 2))
    assert calls == ["user", "ours", "user"] and list(model._forward_hooks) == [users.id]
