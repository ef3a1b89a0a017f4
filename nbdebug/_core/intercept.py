"""See the losses, backward passes and data-loader passes of a training loop the user writes.

A monitor cannot ask the user to call anything, so it watches process-wide entry points:
`torch.autograd.backward` (every `loss.backward()` goes through it; `Tensor.backward` too, so that it is
seen before a TorchFunctionMode dispatches it), the loss functions of
`torch.nn.functional` (the `nn.*Loss` modules call them too, so a functional `F.cross_entropy(...)` and
`nn.CrossEntropyLoss()` are seen the same way), `DataLoader.__iter__` (a new pass = a new epoch) and
`torch.amp.GradScaler`'s `scale` / `unscale_` / `step` (under mixed precision the tensor that reaches
backward is the loss times the scale, ~65536, and the gradients stay scaled until `unscale_`), and gradient
clipping (`clip_grad_norm_` through the module-level helper it calls, so that a name imported before the
watch is seen too; `clip_grad_value_` through the function its no-grad wrapper calls): clipping gradients that still
carry the scale crushes every update.

These are patched, reference-counted, only while at least one listener is registered, and put back
exactly in `finally`. Patching a handful of functions costs nothing for the other ops; a
`TorchFunctionMode` would see everything but costs ~0.2 ms per training step of a small CNN (measured:
1.17x), more than the whole monitoring budget. Limitation: a loss imported by name before the watch
started (`from torch.nn.functional import cross_entropy`) is not seen; the backward still is.

A listener's failure never breaks the user's training: it is recorded in `listener.internal_errors`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
import torch.nn.functional as F
import torch.nn.utils.clip_grad as clip_grad
from torch.amp import GradScaler
from torch.utils.data import DataLoader

from .tensors import detached

LOSS_FUNCTIONS: tuple[str, ...] = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
)


class Listener(Protocol):
    """What a listener may implement; a method it lacks is simply not called. `on_loss` gets every
    argument after `target` by name (`F.cross_entropy(x, y, w)` arrives as `weight=w`). `on_scaler`:
    ("scale", scaler, outputs, scaled), ("unscale", scaler, optimizer), ("step-start" / "step-end",
    scaler, optimizer) around `scaler.step(optimizer)`. `on_clip(kind, parameters, limit, total_norm)`
    before the gradients are clipped: kind "norm" (total_norm the tensor clip_grad_norm_ computed) or
    "value" (total_norm None)."""

    internal_errors: list[str]

    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None: ...
    def on_loss(self, name: str, input: Any, target: Any, output: Any, kwargs: dict) -> None: ...
    def on_loader_iter(self, loader: DataLoader) -> None: ...
    def on_scaler(self, event: str, scaler: Any, *args: Any) -> None: ...
    def on_clip(self, kind: str, parameters: list, limit: float, total_norm: Any) -> None: ...


_lock = threading.RLock()
_listeners: list[Listener] = []
_saved: dict[tuple[Any, str], Any] = {}
_saved_cells: list[tuple[Any, Any]] = []  # (closure cell, its original contents): cells are not hashable
_depth = threading.local()


def _notify(method: str, *args: Any) -> None:
    for listener in list(_listeners):
        fn = getattr(listener, method, None)
        if fn is None:
            continue
        try:
            fn(*args)
        except Exception as e:  # never break the user's training because of a monitor bug
            errors = getattr(listener, "internal_errors", None)
            if errors is not None and len(errors) < 100:
                errors.append(f"{method}: {type(e).__name__}: {e}")


def _as_tuple(tensors: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(tensors, torch.Tensor):
        return (tensors,)
    return tuple(t for t in tensors if isinstance(t, torch.Tensor))


def _wrap_backward(original: Callable) -> Callable:
    @functools.wraps(original)
    def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "backward", 0):
            return original(tensors, *args, **kwargs)
        _depth.backward = 1
        try:
            seen = _as_tuple(tensors)
            _notify("on_backward", seen, "start")
            result = original(tensors, *args, **kwargs)
            _notify("on_backward", seen, "end")
            return result
        finally:
            _depth.backward = 0

    return backward


def _wrap_loss(name: str, original: Callable) -> Callable:
    # the names of the arguments after (input, target), so that a positional weight is seen as weight=
    names = list(inspect.signature(original).parameters)[2:]

    @functools.wraps(original)
    def loss(input: Any, target: Any = None, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "loss", 0):  # a loss calling another loss is one loss
            return original(input, target, *args, **kwargs)
        _depth.loss = 1
        try:
            out = original(input, target, *args, **kwargs)
        finally:
            _depth.loss = 0
        if args:
            kwargs = {**dict(zip(names, args)), **kwargs}
        _notify("on_loss", name, input, target, out, kwargs)
        return out

    return loss


def per_example(name: str, input: torch.Tensor, target: Any, kwargs: dict) -> torch.Tensor | None:
    """Loss `name` recomputed on (input, target) with `reduction='none'`, one value per row of `input`
    (the mean over a row's other positions, targets equal to `ignore_index` left out; NaN for a row with
    none left); None when the loss gives no value per row. Never syncs the device, never raises."""
    values = per_element(name, input, target, kwargs)
    if values is None:
        return None
    t = detached(target) if isinstance(target, torch.Tensor) else target
    return row_means(name, values, t, kwargs)


def per_element(name: str, input: torch.Tensor, target: Any, kwargs: dict) -> torch.Tensor | None:
    """The values of loss `name` with `reduction='none'`, as a float (rows, positions) tensor (rows: the
    first dimension of `input`); None when the loss gives no value per row or cannot run. The costly half
    of `per_example`, so that a caller can average rows later, for many calls at once (`row_means`)."""
    fn = _saved.get((F, name), getattr(F, name, None))
    if fn is None or not isinstance(input, torch.Tensor) or input.dim() == 0:
        return None
    kw = {k: v for k, v in kwargs.items() if k not in ("reduction", "size_average", "reduce")}
    t = detached(target) if isinstance(target, torch.Tensor) else target
    # a torch-function mode (watch's activation probe) dispatches to the public, patched F.<loss>: the
    # recomputation must not be reported as one more loss call (it was counted as a validation batch)
    depth = getattr(_depth, "loss", 0)
    _depth.loss = 1
    try:
        with torch.no_grad():
            values = fn(input, t, reduction="none", **kw)
    except (RuntimeError, ValueError, TypeError, IndexError):
        return None
    finally:
        _depth.loss = depth
    if not isinstance(values, torch.Tensor) or values.dim() == 0 or values.shape[0] != input.shape[0]:
        return None
    values = values if values.dtype == torch.float32 else values.float()  # (computed without grad)
    return values if values.dim() == 2 else values.reshape(values.shape[0], -1)


def ignored(name: str, target: Any, kwargs: dict) -> int | None:
    """The target value whose positions a class-index loss leaves out (`ignore_index`), else None."""
    if (
        name in ("cross_entropy", "nll_loss")
        and isinstance(target, torch.Tensor)
        and not target.is_floating_point()
    ):
        return int(kwargs.get("ignore_index", -100))
    return None


def row_means(name: str, values: torch.Tensor, target: Any, kwargs: dict) -> torch.Tensor:
    """The mean of each row of `per_element`'s (rows, positions) values, positions whose target is ignored
    left out (NaN for a row with none left). `values` may hold the rows of several calls of one loss
    with the same `ignore_index`, `target` their targets in the same order."""
    skip = ignored(name, target, kwargs)
    if skip is not None:
        keep = (target != skip).reshape(values.shape).float()
        return (values * keep).sum(1) / keep.sum(1)  # 0/0 = NaN for a row whose targets are all ignored
    return values.mean(1)


def _wrap_iter(original: Callable) -> Callable:
    @functools.wraps(original)
    def __iter__(self: DataLoader) -> Any:
        _notify("on_loader_iter", self)
        return original(self)

    return __iter__


def _wrap_scaler(method: str, original: Callable) -> Callable:
    """`GradScaler.scale` / `unscale_` / `step`, reported to the listeners' `on_scaler(event, scaler,
    ...)`; what the scaler does is unchanged (the same call, the same return value)."""
    if method == "scale":

        @functools.wraps(original)
        def scale(self: Any, outputs: Any) -> Any:
            scaled = original(self, outputs)
            if scaled is not outputs:  # a disabled scaler returns its input
                _notify("on_scaler", "scale", self, outputs, scaled)
            return scaled

        return scale
    if method == "unscale_":

        @functools.wraps(original)
        def unscale_(self: Any, optimizer: Any) -> Any:
            result = original(self, optimizer)
            _notify("on_scaler", "unscale", self, optimizer)
            return result

        return unscale_

    @functools.wraps(original)
    def step(self: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        _notify("on_scaler", "step-start", self, optimizer)
        try:
            return original(self, optimizer, *args, **kwargs)
        finally:
            _notify("on_scaler", "step-end", self, optimizer)

    return step


def _wrap_clip(kind: str, original: Callable) -> Callable:
    """`_clip_grads_with_norm_(parameters, max_norm, total_norm, ...)` or `clip_grad_value_(parameters,
    clip_value, ...)`, reported to `on_clip` before it clips; a generator of parameters is read once."""

    @functools.wraps(original)
    def clip(parameters: Any, limit: Any, *args: Any, **kwargs: Any) -> Any:
        params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
        total = (args[0] if args else kwargs.get("total_norm")) if kind == "norm" else None
        _notify("on_clip", kind, params, limit, total)
        return original(params, limit, *args, **kwargs)

    return clip


def _clip_targets() -> list[tuple[Any, str, str]]:
    """(owner, attribute, kind) of the clipping functions patched: the helper `clip_grad_norm_` looks up
    at call time and its public alias when it is the same function; for `clip_grad_value_`, the function
    its `_no_grad` wrapper closes over (so that a name imported before the watch is seen too), else the
    module attributes."""
    out = []
    helper = getattr(clip_grad, "_clip_grads_with_norm_", None)
    if helper is not None:
        out.append((clip_grad, "_clip_grads_with_norm_", "norm"))
        if getattr(torch.nn.utils, "clip_grads_with_norm_", None) is helper:
            out.append((torch.nn.utils, "clip_grads_with_norm_", "norm"))
    value = getattr(clip_grad, "clip_grad_value_", None)
    inner = getattr(value, "__wrapped__", None)
    cells = [c for c in getattr(value, "__closure__", None) or () if c.cell_contents is inner]
    if inner is not None and len(cells) == 1:
        return [*out, (cells[0], "cell_contents", "value")]
    for owner in (clip_grad, torch.nn.utils):
        if value is not None and getattr(owner, "clip_grad_value_", None) is value:
            out.append((owner, "clip_grad_value_", "value"))
    return out


def _install() -> None:
    _saved[(torch.autograd, "backward")] = torch.autograd.backward
    torch.autograd.backward = _wrap_backward(torch.autograd.backward)
    # `loss.backward()` is seen before it is dispatched to a TorchFunctionMode (a monitor's probe): its start
    # is then reported outside the mode's handler, where the probe can take its mode off the stack before
    # the optimizer step instead of having every later torch call go through it (the depth guard reports
    # the torch.autograd.backward it calls only once)
    _saved[(torch.Tensor, "backward")] = torch.Tensor.__dict__["backward"]
    torch.Tensor.backward = _wrap_backward(torch.Tensor.__dict__["backward"])
    for name in LOSS_FUNCTIONS:
        original = getattr(F, name)
        _saved[(F, name)] = original
        setattr(F, name, _wrap_loss(name, original))
    _saved[(DataLoader, "__iter__")] = DataLoader.__dict__["__iter__"]
    DataLoader.__iter__ = _wrap_iter(DataLoader.__dict__["__iter__"])
    for method in ("scale", "unscale_", "step"):
        original = GradScaler.__dict__[method]
        _saved[(GradScaler, method)] = original
        setattr(GradScaler, method, _wrap_scaler(method, original))
    for owner, name, kind in _clip_targets():
        original = getattr(owner, name)
        if name == "cell_contents":
            _saved_cells.append((owner, original))
        else:
            _saved[(owner, name)] = original
        setattr(owner, name, _wrap_clip(kind, original))


def _uninstall() -> None:
    while _saved_cells:
        cell, original = _saved_cells.pop()
        cell.cell_contents = original
    while _saved:
        (owner, name), original = _saved.popitem()
        setattr(owner, name, original)


def unpatched(func: Any) -> Any:
    """The original of a patched loss function, else `func`. A TorchFunctionMode dispatches a loss imported
    by name (`from torch.nn.functional import cross_entropy`) to the public, patched F.<loss>: a monitor's
    mode calls the original instead, so that its presence does not change which loss calls are seen."""
    if (
        getattr(func, "__module__", None) == F.__name__
        and getattr(F, getattr(func, "__name__", ""), None) is func
    ):
        return _saved.get((F, func.__name__), func)
    return func


def installed() -> bool:
    """Whether the patches are in place (tests check they are gone after every watch)."""
    return bool(_saved)


@contextlib.contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Register `listener` for the duration of the block; patches live while anyone listens."""
    with _lock:
        if not _listeners:
            _install()
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)
            if not _listeners:
                _uninstall()
