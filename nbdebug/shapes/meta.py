"""The meta walk behind `trace(..., device="meta")`: shapes without compute, the model left as it was.

Every parameter and buffer is swapped for a meta twin (`MetaWeights`: one twin per tensor, so tied weights
stay tied, and the same objects back afterwards); the inputs are moved to meta; factory calls without a
device in user code (`torch.ones(n)` in `forward`) make meta tensors, as under `torch.device("meta")`
(which would put a Python mode in front of every op inside built-in layers too: 15% of the walk of a
1.6B-parameter GPT); a lazy module's
parameters are swapped as soon as its first call materializes them; `nn.DataParallel` and
`DistributedDataParallel` step straight into the module they wrap (no scatter to devices).

Meta tensors have shapes but no values. What PyTorch needs the values of is small and integer: sequence
lengths and the permutations made from them (`pack_padded_sequence`, `pad_packed_sequence`, whose
lengths and batch sizes live on the CPU by contract). The walk keeps a CPU copy ("shadow") of each 1-D
integer input and PackedSequence index, follows it through the ops computed from shadowed values alone,
and hands an op the CPU values when it fails without them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.utils.rnn import PackedSequence

from .._core.errors import NbdebugError
from .._core.hooks import HookSet, MetaWeights
from .record import _Recorder

SHADOW_INPUT_MAX = 4096  # elements of a 1-D integer input whose values the walk keeps (sequence lengths)
SHADOW_MAX = 65536  # elements of a derived integer tensor whose values the walk follows
_FACTORIES = {"arange", "zeros", "ones", "full", "tensor", "as_tensor", "range"}  # with known values
_DEVICE_FACTORIES = _FACTORIES | {
    "empty", "empty_strided", "eye", "linspace", "logspace", "rand", "randn", "randint", "randperm",
    "tril_indices", "triu_indices", "scalar_tensor",
}  # fmt: skip
_WRAPPERS = (nn.DataParallel, nn.parallel.DistributedDataParallel)


def check_supported(model: nn.Module) -> None:
    """A module made by `torch.jit.trace` cannot be walked on meta: say so before anything runs."""
    for name, m in model.named_modules():
        if isinstance(m, torch.jit.TracedModule):
            what = f"{name} ({type(m).__name__})" if name else f"the model ({type(m).__name__})"
            raise NbdebugError(
                f"{what} was made by torch.jit.trace and cannot run on the meta device: its graph fixes the "
                "device of every tensor it creates (even device=x.device) to the one it was traced on, so "
                "CPU constants would meet meta tensors. Trace it without device='meta', or trace the "
                "original module (before torch.jit.trace) on meta; torch.jit.script'ed modules work on meta."
            )


class Shadows:
    """CPU values of small integer meta tensors: `get(t)` is the CPU tensor with t's values, or None."""

    def __init__(self) -> None:
        self.values: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(meta) -> (meta, cpu)

    def add(self, meta: torch.Tensor, cpu: torch.Tensor) -> None:
        self.values[id(meta)] = (meta, cpu)

    def get(self, t: Any) -> torch.Tensor | None:
        entry = self.values.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def drop(self, t: Any) -> None:
        if self.get(t) is not None:
            del self.values[id(t)]


def _is_small_int(t: torch.Tensor, limit: int) -> bool:
    return (not t.is_floating_point() and not t.is_complex()) and t.numel() <= limit


def to_meta(obj: Any, shadows: Shadows) -> Any:
    """Inputs on meta: tensors in tuples, lists, dicts, namedtuples, dataclasses; a PackedSequence keeps
    its batch sizes on the CPU (PyTorch requires it); 1-D integer tensors keep a CPU shadow."""
    if isinstance(obj, torch.Tensor):
        meta = obj.to("meta")
        if obj.dim() == 1 and obj.device.type == "cpu" and _is_small_int(obj, SHADOW_INPUT_MAX):
            shadows.add(meta, obj)
        return meta
    if isinstance(obj, PackedSequence):
        idx = [None if t is None else to_meta(t, shadows) for t in (obj.sorted_indices, obj.unsorted_indices)]
        return type(obj)(obj.data.to("meta"), obj.batch_sizes, *idx)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_meta(o, shadows) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_meta(o, shadows) for o in obj)
    if isinstance(obj, dict):
        if type(obj) is dict:
            return {k: to_meta(v, shadows) for k, v in obj.items()}
        new = copy.copy(obj)  # a dict subclass (BatchEncoding, ModelOutput) keeps its type
        for k, v in obj.items():
            new[k] = to_meta(v, shadows)
        return new
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        new = copy.copy(obj)
        for f in dataclasses.fields(obj):
            object.__setattr__(new, f.name, to_meta(getattr(obj, f.name, None), shadows))
        return new
    return obj


@contextlib.contextmanager
def meta_walk(model: nn.Module, hooks: HookSet) -> Iterator[None]:
    """Run the block as a meta walk of `model` (see the module docstring); everything back on exit."""
    wrappers = [m for m in model.modules() if isinstance(m, _WRAPPERS)]
    saved = [(m, m.__dict__.get("forward", _MISSING)) for m in wrappers]
    with MetaWeights(model) as weights:
        for m in model.modules():
            if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params():
                # registered after the module's own initializing pre-hook: swaps what it materialized
                hooks.forward_pre(m, lambda module, args: weights.swap(module))
        try:
            for m in wrappers:
                m.__dict__["forward"] = _direct(m)
            yield
        finally:
            for m, forward in saved:
                if forward is _MISSING:
                    m.__dict__.pop("forward", None)
                else:
                    m.__dict__["forward"] = forward


_MISSING = object()


def _direct(wrapper: nn.Module):
    def forward(*args: Any, **kwargs: Any) -> Any:
        return wrapper.module(*args, **kwargs)

    return forward


# ------------------------------------------------------------------------------------------------------
# values of small integer tensors, followed through the ops made from them


class MetaRecorder(_Recorder):
    """The function recorder of a meta walk: puts device-less factory calls on meta, and hands shadowed
    values to the ops that need them."""

    def __init__(self, state: Any, shadows: Shadows) -> None:
        super().__init__(state)
        self.shadows = shadows

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _DEVICE_FACTORIES and kwargs.get("device") is None:
            if not any(isinstance(a, torch.Tensor) for a in args):
                kwargs = {**kwargs, "device": "meta"}  # as torch.device("meta") would
        if name in _FACTORIES or any(self.shadows.get(a) is not None for a in (*args, *kwargs.values())):
            func = _Shadowed(func, self.shadows)
        return super().__torch_function__(func, types, args, kwargs)


class _Shadowed:
    """`func` run on meta, then on the shadows' CPU values: retried with them when the meta call fails,
    and followed (a new shadow for the output) when every tensor argument has one."""

    def __init__(self, func: Any, shadows: Shadows) -> None:
        self.func, self.shadows = func, shadows
        for attr in ("__name__", "__qualname__", "__module__"):
            setattr(self, attr, getattr(func, attr, ""))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        get = self.shadows.get
        cpu_args = [get(a) if get(a) is not None else a for a in args]
        cpu_kwargs = {k: get(v) if get(v) is not None else v for k, v in kwargs.items()}
        try:
            out = self.func(*args, **kwargs)
        except Exception:
            if all(a is b for a, b in zip(args, cpu_args)) and all(
                kwargs[k] is v for k, v in cpu_kwargs.items()
            ):
                raise
            try:
                return self.func(*cpu_args, **cpu_kwargs)
            except Exception:
                pass
            raise
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if not tensors:  # a factory: the same call on the CPU, if its result is a small integer tensor
            if not (
                isinstance(out, torch.Tensor) and out.device.type == "meta" and _is_small_int(out, SHADOW_MAX)
            ):
                return out
            cpu_kwargs = {**kwargs, "device": "cpu"}
        elif any(get(t) is None for t in tensors):  # values we do not know: a written shadow is stale
            self._drop_written(args, kwargs)
            return out
        try:
            cpu_out = self.func(*cpu_args, **cpu_kwargs)
        except Exception:
            self._drop_written(args, kwargs)
            return out
        pairs = (
            zip(out, cpu_out) if isinstance(out, tuple) and isinstance(cpu_out, tuple) else [(out, cpu_out)]
        )
        for o, c in pairs:
            if (
                isinstance(o, torch.Tensor) and isinstance(c, torch.Tensor) and o.device.type == "meta"
                and c.device.type == "cpu" and o.shape == c.shape and _is_small_int(c, SHADOW_MAX)
            ):  # fmt: skip
                self.shadows.add(o, c)
        return out

    def _drop_written(self, args: tuple, kwargs: dict) -> None:
        """Forget the values of what this call wrote in place (`x.add_(...)`, `x[i] = ...`, `out=`)."""
        name = self.__name__
        if args and (
            name == "__setitem__"
            or name.startswith("__i")
            or (name.endswith("_") and not name.endswith("__"))
        ):
            self.shadows.drop(args[0])
        if "out" in kwargs:
            self.shadows.drop(kwargs["out"])
