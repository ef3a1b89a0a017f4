"""`snapshot(model)` / `assert_unchanged(model, before)`: everything nbdebug promises to leave as it was.

nbdebug promises that no feature changes the user's model: on success, on an exception and on
KeyboardInterrupt the model, the process-wide hook tables, the RNGs and torch's global modes come back as
they were. This helper records, before a call, every one of those things and compares them afterwards:

- the module tree: every (qualified name, class, object identity) of `named_modules(remove_duplicate=False)`,
  so a replaced submodule, a class swapped by a lazy module or a parametrization, or a shared module
  split in two is caught;
- every parameter and buffer slot (`module._parameters[name]`, `module._buffers[name]`): object identity,
  device, dtype, shape, value, `requires_grad`, `.grad` (its value: features that restore gradients
  put back a copy) and the buffer's persistence;
- `state_dict()`: the keys and every value;
- every module's `training` flag;
- every hook dictionary of every module (forward, forward-pre, backward, backward-pre, state-dict,
  load-state-dict; with-kwargs and always-call tables too), every parameter's and buffer's tensor hooks
  (`_backward_hooks`, `_post_accumulate_grad_hooks`), and the global module hooks of
  `torch.nn.modules.module` (forward, pre, backward, registration hooks);
- plain tensor attributes of modules, i.e. tensors in a module's `__dict__` that are neither parameters
  nor buffers (a pruned module's `weight`, an attention mask a model keeps) and tensors in lists, tuples
  and dicts held by such an attribute: device, dtype, shape and value (not identity: the pruning
  pre-hook legitimately recomputes `weight` on every forward pass);
- the instance attributes that shadow a method (a monkeypatched `module.forward`);
- RNG state (torch CPU, CUDA when initialized, Python `random`, NumPy), grad mode, inference mode,
  anomaly mode, the default device and dtype, the torch-function-mode and dispatch-mode stacks and
  `torch.nn.utils.parametrize`'s cache flag;
- the functions a monitor may patch (every callable of `torch.nn.functional`, `torch.autograd.backward`,
  `Tensor.backward`, `Module.__call__`, `DataLoader.__iter__`, the optimizer base methods);
- optionally optimizers: their hook tables, instance-level overrides (`opt.step = ...`) and state.

`assert_unchanged` raises an AssertionError whose message names each thing that changed, one per line
(e.g. ``parameter '0.weight' (Linear): object replaced``). `ignore` skips whole categories, for callers
whose own code legitimately changes them (a training loop under `watch` changes weights and gradients).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.modules.module as module_globals
from torch import nn

# Categories `assert_unchanged(..., ignore=...)` accepts.
CATEGORIES = frozenset(
    {
        "structure", "identity", "values", "requires_grad", "grads", "state_dict", "training", "hooks",
        "tensor_hooks", "global_hooks", "tensor_attributes", "method_overrides", "rng", "grad_mode",
        "function_modes", "defaults", "patched", "optimizer_hooks", "optimizer_state",
    }
)  # fmt: skip

MODULE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
GLOBAL_HOOK_DICTS = tuple(
    n
    for n in (
        "_global_forward_hooks",
        "_global_forward_hooks_with_kwargs",
        "_global_forward_hooks_always_called",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
        "_global_module_registration_hooks",
        "_global_parameter_registration_hooks",
        "_global_buffer_registration_hooks",
    )
    if hasattr(module_globals, n)
)
TENSOR_HOOK_ATTRS = ("_backward_hooks", "_post_accumulate_grad_hooks")
OPTIMIZER_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)
# methods a monitor could replace on an instance; `forward` is the one users and tools patch most
SHADOWABLE = ("forward", "__call__", "_call_impl", "state_dict", "train", "eval", "zero_grad", "step")


def _patch_targets() -> dict[str, Any]:
    from torch.utils.data import DataLoader

    targets: dict[str, Any] = {
        f"torch.nn.functional.{n}": getattr(F, n)
        for n in dir(F)
        if not n.startswith("_") and callable(getattr(F, n, None))
    }
    targets.update(
        {
            "torch.autograd.backward": torch.autograd.backward,
            "torch.autograd.grad": torch.autograd.grad,
            "torch.Tensor.backward": torch.Tensor.backward,
            "torch.nn.Module.__call__": nn.Module.__call__,
            "torch.nn.Module._call_impl": nn.Module._call_impl,
            "torch.nn.Module.__setattr__": nn.Module.__setattr__,
            "torch.nn.Module.__getattr__": nn.Module.__getattr__,
            "DataLoader.__iter__": DataLoader.__dict__["__iter__"],
            "torch.optim.Optimizer.step": torch.optim.Optimizer.step,
            "torch.optim.Optimizer.zero_grad": torch.optim.Optimizer.zero_grad,
        }
    )
    return targets


# ------------------------------------------------------------------------------------------------------
# tensor records


@dataclass(frozen=True)
class TensorRecord:
    """What a tensor was: its metadata and, off the meta device, a copy of its values."""

    kind: str  # "tensor" | "meta" | "uninitialized"
    device: str
    dtype: str
    shape: tuple[int, ...]
    value: torch.Tensor | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorRecord:
        if isinstance(t, nn.parameter.UninitializedTensorMixin):
            return cls("uninitialized", str(t.device), str(t.dtype), ())
        meta = t.device.type == "meta"
        value = None if meta else t.detach().clone()
        return cls("meta" if meta else "tensor", str(t.device), str(t.dtype), tuple(t.shape), value)

    def differs(self, other: TensorRecord) -> str | None:
        """None when equal, else a short description of how `other` (the new state) differs."""
        if self.kind != other.kind:
            return f"{self.kind} -> {other.kind}"
        if self.device != other.device:
            return f"device {self.device} -> {other.device}"
        if self.dtype != other.dtype:
            return f"dtype {self.dtype} -> {other.dtype}"
        if self.shape != other.shape:
            return f"shape {self.shape} -> {other.shape}"
        if self.value is not None and other.value is not None and not _same_values(self.value, other.value):
            return "values changed"
        return None


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_sparse or b.is_sparse:
        a, b = a.to_dense(), b.to_dense()
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))
    return False


def _hook_items(d: Any) -> tuple[tuple[Any, Any], ...]:
    """(key, hook object) pairs of a hook table; the hook compared by identity."""
    if not d:
        return ()
    return tuple(d.items())


def _same_items(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(ka == kb and va is vb for (ka, va), (kb, vb) in zip(a, b))


def _rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = (kind, keys.copy(), pos, has_gauss, gauss)
    except ImportError:  # pragma: no cover - numpy is a dependency of nbdebug
        pass
    return state


def _same_rng(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_rng(x, y) for x, y in zip(a, b))
    try:
        import numpy as np

        if isinstance(a, np.ndarray):
            return bool(np.array_equal(a, b))
    except ImportError:  # pragma: no cover
        pass
    return a == b


def _mode_stacks() -> dict[str, tuple[Any, ...]]:
    stacks: dict[str, tuple[Any, ...]] = {}
    try:
        stacks["torch-function modes"] = tuple(torch.overrides._get_current_function_mode_stack())
    except Exception:  # pragma: no cover - private API
        pass
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

        stacks["dispatch modes"] = tuple(_get_current_dispatch_mode_stack())
    except Exception:  # pragma: no cover - private API
        pass
    return stacks


def _plain_tensor_attrs(m: nn.Module) -> dict[str, TensorRecord]:
    """Tensors a module holds in its __dict__ outside _parameters/_buffers, one container level deep."""
    out: dict[str, TensorRecord] = {}
    try:
        items = list(vars(m).items())
    except TypeError:  # pragma: no cover - a module without __dict__
        return out
    for k, v in items:
        if k in ("_parameters", "_buffers", "_modules"):
            continue
        if isinstance(v, torch.Tensor):
            out[k] = TensorRecord.of(v)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                if isinstance(x, torch.Tensor):
                    out[f"{k}[{i}]"] = TensorRecord.of(x)
        elif isinstance(v, dict) and not k.startswith("_"):
            for kk, x in v.items():
                if isinstance(x, torch.Tensor):
                    out[f"{k}[{kk!r}]"] = TensorRecord.of(x)
    return out


# ------------------------------------------------------------------------------------------------------
# the snapshot


@dataclass
class Snapshot:
    """Facts about a model and the process, keyed by a readable name and grouped by category."""

    facts: dict[str, tuple[str, Any]] = field(default_factory=dict)  # key -> (category, value)
    keep: list[Any] = field(default_factory=list)  # strong refs, so that ids are never reused

    def add(self, category: str, key: str, value: Any) -> None:
        self.facts[key] = (category, value)


def _module_names(model: nn.Module) -> dict[int, str]:
    names: dict[int, str] = {}
    for name, m in model.named_modules(remove_duplicate=False):
        names.setdefault(id(m), name or "<root>")
    return names


def snapshot(model: nn.Module, *, optimizers: Iterable[torch.optim.Optimizer] = ()) -> Snapshot:
    """Record everything `assert_unchanged` compares (see the module docstring)."""
    snap = Snapshot()
    add = snap.add
    structure = []
    for name, m in model.named_modules(remove_duplicate=False):
        structure.append((name or "<root>", type(m).__qualname__, m))
    snap.keep.append([m for _, _, m in structure])
    add("structure", "module tree", tuple(structure))
    names = _module_names(model)
    seen: set[int] = set()
    for _name, m in model.named_modules(remove_duplicate=False):
        if id(m) in seen:
            continue
        seen.add(id(m))
        label = f"{names[id(m)]} ({type(m).__name__})"
        add("training", f"module {label}: training flag", bool(m.training))
        for h in MODULE_HOOK_DICTS:
            add("hooks", f"module {label}: hook table {h}", _hook_items(getattr(m, h, None)))
        for meth in SHADOWABLE:
            try:
                shadow = vars(m).get(meth)
            except TypeError:  # pragma: no cover
                shadow = None
            if meth == "forward" and isinstance(m, torch.jit.ScriptModule):
                shadow = None  # a ScriptModule keeps its compiled forward in __dict__
            add("method_overrides", f"module {label}: instance attribute {meth!r}", shadow)
        for kind, table in (("parameter", m._parameters), ("buffer", m._buffers)):
            for pname, t in list(table.items()):
                key = f"{kind} {_qual(names[id(m)], pname)!r} ({type(m).__name__})"
                snap.keep.append(t)
                add("identity", f"{key}: object", t)
                if t is None:
                    continue
                add("values", f"{key}: value", TensorRecord.of(t))
                add("requires_grad", f"{key}: requires_grad", bool(t.requires_grad))
                add("grads", f"{key}: .grad", None if t.grad is None else TensorRecord.of(t.grad))
                for h in TENSOR_HOOK_ATTRS:
                    add("tensor_hooks", f"{key}: tensor hooks {h}", _hook_items(getattr(t, h, None)))
        add(
            "state_dict",
            f"module {label}: non-persistent buffers",
            frozenset(getattr(m, "_non_persistent_buffers_set", ()) or ()),
        )
        for attr, rec in _plain_tensor_attrs(m).items():
            add("tensor_attributes", f"module {label}: tensor attribute {attr!r}", rec)
    try:
        sd = model.state_dict(keep_vars=True)
    except Exception as e:  # a state_dict that raises is itself a fact worth keeping
        add("state_dict", "state_dict()", f"raised {type(e).__name__}: {e}")
    else:
        add("state_dict", "state_dict() keys", tuple(sd))
        for k, v in sd.items():
            if isinstance(v, torch.Tensor):
                add("state_dict", f"state_dict[{k!r}]", TensorRecord.of(v))
    for g in GLOBAL_HOOK_DICTS:
        add("global_hooks", f"torch.nn.modules.module.{g}", _hook_items(getattr(module_globals, g)))
    add("rng", "RNG state", _rng())
    add("grad_mode", "grad mode (torch.is_grad_enabled)", torch.is_grad_enabled())
    add("grad_mode", "inference mode", torch.is_inference_mode_enabled())
    add("grad_mode", "anomaly detection", torch.is_anomaly_enabled())
    for k, stack in _mode_stacks().items():
        add("function_modes", k, stack)
        snap.keep.append(stack)
    add("defaults", "default device", str(torch.get_default_device()))
    add("defaults", "default dtype", torch.get_default_dtype())
    try:
        from torch.nn.utils import parametrize

        add("defaults", "torch.nn.utils.parametrize cache flag", parametrize._cache_enabled)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    for k, fn in _patch_targets().items():
        add("patched", k, fn)
    for i, opt in enumerate(optimizers):
        for h in OPTIMIZER_HOOK_DICTS:
            add("optimizer_hooks", f"optimizer {i}: hook table {h}", _hook_items(getattr(opt, h, None)))
        for meth in SHADOWABLE:
            add("optimizer_hooks", f"optimizer {i}: instance attribute {meth!r}", vars(opt).get(meth))
        add("optimizer_state", f"optimizer {i}: param_groups", _groups(opt))
        params = [p for g in opt.param_groups for p in g["params"]]
        for j, p in enumerate(params):
            for sk, sv in opt.state.get(p, {}).items():
                rec = TensorRecord.of(sv) if isinstance(sv, torch.Tensor) else sv
                add("optimizer_state", f"optimizer {i}: state of param {j} {sk!r}", rec)
        add("optimizer_state", f"optimizer {i}: state size", len(opt.state))
    return snap


def _groups(opt: torch.optim.Optimizer) -> tuple:
    out = []
    for g in opt.param_groups:
        out.append(
            tuple(
                (k, tuple(id(p) for p in v) if k == "params" else v)
                for k, v in sorted(g.items())
                if not isinstance(v, torch.Tensor)
            )
        )
    return tuple(out)


def _qual(module_name: str, attr: str) -> str:
    return attr if module_name == "<root>" else f"{module_name}.{attr}"


# ------------------------------------------------------------------------------------------------------
# comparison


def _describe(category: str, before: Any, after: Any) -> str | None:
    """None when `before` and `after` are the same fact, else how it changed."""
    if isinstance(before, TensorRecord) and isinstance(after, TensorRecord):
        return before.differs(after)
    if isinstance(before, TensorRecord) or isinstance(after, TensorRecord):
        return f"{_short(before)} -> {_short(after)}"
    if category == "structure":
        if len(before) != len(after):
            return f"{len(before)} -> {len(after)} entries"
        for (n1, t1, m1), (n2, t2, m2) in zip(before, after):
            if n1 != n2:
                return f"module {n1!r} -> {n2!r}"
            if t1 != t2:
                return f"module {n1!r}: class {t1} -> {t2}"
            if m1 is not m2:
                return f"module {n1!r}: object replaced"
        return None
    if category in ("hooks", "tensor_hooks", "global_hooks", "optimizer_hooks") and isinstance(before, tuple):
        if _same_items(before, after):
            return None
        added = [k for k, _ in after if k not in {kb for kb, _ in before}]
        removed = [k for k, _ in before if k not in {ka for ka, _ in after}]
        return f"{len(before)} -> {len(after)} hooks (added {added}, removed {removed})"
    if category == "identity":
        if before is after:
            return None
        if before is None or after is None:
            return f"{_short(before)} -> {_short(after)}"
        return "object replaced"
    if category in ("method_overrides", "patched"):
        return None if before is after else f"{_short(before)} -> {_short(after)}"
    if category == "function_modes":
        same = len(before) == len(after) and all(a is b for a, b in zip(before, after))
        return (
            None if same else f"{[type(m).__name__ for m in before]} -> {[type(m).__name__ for m in after]}"
        )
    if category == "rng":
        changed = [k for k in sorted(set(before) | set(after)) if not _same_rng(before.get(k), after.get(k))]
        return f"changed: {', '.join(changed)}" if changed else None
    return None if before == after else f"{_short(before)} -> {_short(after)}"


def _short(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return f"tensor{tuple(v.shape)} on {v.device}"
    if isinstance(v, TensorRecord):
        return f"{v.kind}{v.shape} on {v.device}"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Change:
    """One fact that differs between two snapshots."""

    category: str
    key: str
    description: str
    now_on_meta: bool = False  # the new value is (or holds) a meta tensor

    def __str__(self) -> str:
        return f"[{self.category}] {self.key}: {self.description}"


def _on_meta(v: Any) -> bool:
    if isinstance(v, TensorRecord):
        return v.kind == "meta"
    if isinstance(v, torch.Tensor):
        return v.device.type == "meta"
    return False


def changes(model: nn.Module, before: Snapshot, *, ignore: Iterable[str] = (), optimizers=()) -> list[Change]:
    """What changed since `before` (empty when nothing did)."""
    ignore = set(ignore)
    unknown = ignore - CATEGORIES
    if unknown:
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {sorted(CATEGORIES)}")
    after = snapshot(model, optimizers=optimizers)
    found: list[Change] = []
    for key in dict.fromkeys([*before.facts, *after.facts]):
        cat_b, val_b = before.facts.get(key, (None, _MISSING))
        cat_a, val_a = after.facts.get(key, (None, _MISSING))
        category = cat_b or cat_a
        if category in ignore:
            continue
        if val_b is _MISSING:
            found.append(Change(category, key, f"added ({_short(val_a)})", _on_meta(val_a)))
        elif val_a is _MISSING:
            found.append(Change(category, key, f"removed (was {_short(val_b)})"))
        else:
            why = _describe(category, val_b, val_a)
            if why is not None:
                found.append(Change(category, key, why, _on_meta(val_a)))
    return found


def differences(
    model: nn.Module, before: Snapshot, *, ignore: Iterable[str] = (), optimizers=()
) -> list[str]:
    """What changed since `before`, one readable line per fact (empty when nothing did)."""
    return [str(c) for c in changes(model, before, ignore=ignore, optimizers=optimizers)]


_MISSING = object()


def assert_unchanged(
    model: nn.Module,
    before: Snapshot,
    *,
    ignore: Iterable[str] = (),
    optimizers: Iterable[torch.optim.Optimizer] = (),
) -> None:
    """Raise AssertionError naming everything that changed since `snapshot(model)` returned `before`."""
    lines = differences(model, before, ignore=ignore, optimizers=tuple(optimizers))
    if lines:
        shown = lines[:40] + ([f"... and {len(lines) - 40} more"] if len(lines) > 40 else [])
        raise AssertionError(
            f"{type(model).__name__} changed ({len(lines)} differences):\n" + "\n".join(shown)
        )
