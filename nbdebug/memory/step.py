"""Activation memory of one training step, per layer, and the peak as a function of batch size.

Why: parameters, gradients and optimizer state are fixed; what grows with the batch is what autograd
saves for backward. `step()` attributes every tensor saved for backward
(`torch.autograd.graph.saved_tensors_hooks`) to the layer running when it was saved, follows the bytes
alive during forward and backward with a dispatch-level tracker (works on CPU, CUDA and the meta
device), and fits peak(N) = fixed + a + b x N from two small batches run on the meta device, where
nothing is allocated, so "what is the largest batch that fits in 12 GB?" is answered before trying it.
On CUDA the peak is also read from the allocator (GPU-ONLY: `torch.cuda.max_memory_allocated`).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from .._core.data import model_device, split_batch
from .._core.errors import NbdebugError, describe
from .._core.hooks import HookSet, MetaWeights, preserved
from .._core.units import parse_bytes
from .step_result import Forecast, LayerMemory, StepMemory

# Optimizer state per parameter once the first step() has run, in units of the parameter's size.
STATE_PER_PARAM = {"Adam": 2, "AdamW": 2, "Adamax": 2, "NAdam": 2, "RAdam": 2, "Adagrad": 1, "Rprop": 2}


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _safe_key(t: torch.Tensor) -> int | None:
    try:
        return _key(t)
    except Exception:  # sparse layouts and wrapper subclasses have no storage of their own
        return None


def _nbytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes()


class LiveBytes(TorchDispatchMode):
    """Bytes of storages created inside the block that are still alive, and their peak.

    Every op's outputs pass through `__torch_dispatch__`, forward and backward alike; a storage is
    counted when first produced and released when its last tensor dies (weakref finalizer).
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}
        self.current = 0
        self.peak = 0
        self.label = "forward"
        self.peak_at = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                if inputs is None:  # storages the op was given: a view or in-place result allocates nothing
                    inputs = {
                        _safe_key(a) for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)
                    }
                self._track(t, inputs)
        return out

    def _track(self, t: torch.Tensor, inputs: set[int]) -> None:
        try:
            key = _key(t)
        except Exception:  # a tensor without a storage (wrapper subclass): nothing allocated here
            return
        entry = self.live.get(key)
        if entry is None and key in inputs:  # a view of (or in-place op on) memory from before the step
            return
        if entry is None:
            entry = self.live[key] = [_nbytes(t), 0]
            self.current += entry[0]
            if self.current > self.peak:
                self.peak, self.peak_at = self.current, self.label
        entry[1] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            self.current -= entry[0]
            del self.live[key]


def _resize(t: Any, n: int, device: torch.device | str) -> Any:
    """A tensor like `t` with `n` rows: meta (empty) or sliced/repeated real rows."""
    if not isinstance(t, torch.Tensor) or t.dim() == 0:
        return t
    if str(device) == "meta":
        return torch.empty((n, *t.shape[1:]), dtype=t.dtype, device="meta")
    idx = torch.arange(n, device=t.device) % t.shape[0]
    return t.index_select(0, idx)


def _batch_size(inputs: tuple, kwargs: dict, target: Any) -> int:
    for t in (*inputs, *kwargs.values(), target):
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            return int(t.shape[0])
    raise NbdebugError(
        f"cannot find a batch dimension in the batch: got {describe((inputs, kwargs, target))}"
    )


def _unique_bytes(tensors: Any, meta: bool = False) -> int:
    """Bytes of the distinct storages behind `tensors`; meta tensors count only when `meta` (a forecast)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and (meta or t.device.type != "meta") and t.layout == torch.strided:
            seen.setdefault(_key(t), _nbytes(t))
    return sum(seen.values())


def _logical_bytes(tensors: Any) -> int:
    """element_size x nelement of the distinct tensors (meta tensors excluded)."""
    seen = {id(t): t for t in tensors if isinstance(t, torch.Tensor) and t.device.type != "meta"}
    return sum(t.element_size() * t.nelement() for t in seen.values())


def _optimizer_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> tuple[int, str]:
    if optimizer is None:
        return 0, "no optimizer given"
    state_tensors = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    if state_tensors:
        return _unique_bytes(state_tensors), f"{type(optimizer).__name__} state present"
    name = type(optimizer).__name__
    per = STATE_PER_PARAM.get(name)
    if per is None and name == "SGD":
        per = 1 if any(g.get("momentum", 0) for g in optimizer.param_groups) else 0
    if per is None and name == "RMSprop":
        g = optimizer.param_groups[0]
        per = 1 + bool(g.get("momentum", 0)) + bool(g.get("centered", False))
    if per is None:
        return 0, f"{name}: state size unknown until its first step"
    params = [p for g in optimizer.param_groups for p in g["params"]]
    return per * _unique_bytes(params), f"{name} expected after its first step: {per} x parameters"


def _one_step(
    model: nn.Module,
    inputs: tuple,
    kwargs: dict,
    target: Any,
    loss_fn: Callable,
    layers: bool,
) -> tuple[LiveBytes, dict[str, dict[str, Any]]]:
    """Forward + backward once under the tracker; per-layer figures when `layers`."""
    tracker = LiveBytes()
    stack: list[str] = []
    stats: dict[str, dict[str, Any]] = {}
    names = {m: n or type(model).__name__ for n, m in model.named_modules()}
    exclude = {_key(t) for t in (*model.parameters(), *model.buffers()) if t.layout == torch.strided}
    exclude |= {_key(t) for t in (*inputs, *kwargs.values()) if isinstance(t, torch.Tensor)}
    saved_seen: set[int] = set()

    def pre(module: nn.Module, args: Any) -> None:
        stack.append(names[module])
        tracker.label = names[module]
        stats.setdefault(
            names[module],
            {"type": type(module).__name__, "saved_bytes": 0, "saved_tensors": 0, "output_bytes": 0},
        )

    def post(module: nn.Module, args: Any, output: Any) -> None:
        name = stack.pop() if stack else names[module]
        row = stats[name]
        row["output_bytes"] += _unique_bytes(tree_leaves(output), meta=True)
        row["live_after"] = tracker.current
        tracker.label = stack[-1] if stack else "forward"

    def pack(t: torch.Tensor) -> torch.Tensor:
        owner = stack[-1] if stack else "(loss)"
        row = stats.setdefault(
            owner, {"type": "loss" if owner == "(loss)" else "", "saved_bytes": 0, "saved_tensors": 0}
        )
        row["saved_tensors"] += 1
        try:
            key = _key(t)
        except Exception:
            return t
        if key not in exclude and key not in saved_seen:
            saved_seen.add(key)
            row["saved_bytes"] += _nbytes(t)
        return t

    with HookSet() as hooks:
        if layers:
            for m in model.modules():
                hooks.forward_pre(m, pre)
                hooks.forward(m, post)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), tracker:
            out = model(*inputs, **kwargs)
            tracker.label = "(loss)"
            loss = loss_fn(out, target) if target is not None else loss_fn(out)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise NbdebugError(
                    f"loss_fn must return a scalar tensor to call backward(); got {describe(loss)}"
                )
            tracker.label = "backward"
            loss.backward()
            del out, loss
    return tracker, stats


def _run_step(model, batch, loss_fn, n, device, layers):
    """One measured step at batch size `n` on `device` ('meta' runs with meta parameters and buffers:
    `MetaWeights` swaps each unique slot once, so shared modules and tied weights come back real)."""
    inputs, kwargs, target = split_batch(batch)
    resize = lambda t: _resize(t, n, device)  # noqa: E731
    inputs, kwargs, target = tree_map(resize, inputs), tree_map(resize, kwargs), tree_map(resize, target)
    if str(device) != "meta":
        return _one_step(model, inputs, kwargs, target, loss_fn, layers)
    with MetaWeights(model):
        return _one_step(model, inputs, kwargs, target, loss_fn, layers)


def _default_sizes(n: int) -> tuple[int, int]:
    """Two small batches below the real one, so the check at the real size is out of sample."""
    a, b = max(1, n // 4), max(2, n // 2)
    return (a, b) if a != b else (a, a + 1)


_OOM = tuple(
    t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t
)


def step(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    sizes: tuple[int, int] | None = None,
    budget: int | str | None = None,
    forecast_on: str = "meta",
    measure: bool = True,
) -> StepMemory:
    """Measure one forward + backward of `model` on `batch`, per layer, and forecast peak vs batch size.

    The optimizer is not stepped and the model comes back unchanged (mode, buffers, gradients, RNG).
    `sizes`: the two small batch sizes the forecast is fit from (default N/4 and N/2); `forecast_on`:
    "meta" (default: nothing allocated, any size) or "device" (the model's device, real rows repeated).
    `budget` ("12GB", bytes) asks for the largest batch that fits; on CUDA it defaults to the device's
    memory. `measure=False`, or a real step that runs out of memory, measures the layers on meta instead.
    """

    if not isinstance(model, nn.Module):
        raise NbdebugError(f"model must be an nn.Module, got {describe(model)}")
    if not callable(loss_fn):
        raise NbdebugError(f"loss_fn must be callable (an nn.Module or a function), got {describe(loss_fn)}")
    if forecast_on not in ("meta", "device"):
        raise NbdebugError(f"forecast_on must be 'meta' or 'device', got {forecast_on!r}")
    inputs, kwargs, target = split_batch(batch)
    n = _batch_size(inputs, kwargs, target)
    sizes = tuple(sizes) if sizes is not None else _default_sizes(n)
    if len(sizes) != 2 or sizes[0] == sizes[1] or min(sizes) < 1:
        raise NbdebugError(f"sizes must be two different positive batch sizes, got {sizes!r}")
    device = model_device(model)
    budget_bytes = parse_bytes(budget) if budget is not None else None
    params = list(model.parameters())
    opt_bytes, opt_note = _optimizer_bytes(model, optimizer)
    # logical bytes, not storages: a batch sliced from a big tensor (`images[:64]`) shares its storage,
    # but the batches of a real loop are fresh tensors of exactly this size
    batch_bytes = _logical_bytes(tree_leaves((inputs, kwargs, target)))
    result = StepMemory(
        layers=[],
        batch_size=n,
        device=str(device),
        saved_bytes=0,
        peak_bytes=0,
        peak_at="",
        param_bytes=_unique_bytes(params),
        buffer_bytes=_unique_bytes(model.buffers()),
        optimizer_bytes=opt_bytes,
        optimizer_note=opt_note,
        batch_bytes=batch_bytes,
        budget=budget_bytes,
    )
    cuda = device.type == "cuda"
    if cuda and budget_bytes is None:  # GPU-ONLY
        result.budget = torch.cuda.get_device_properties(device).total_memory
    old_grads = {p: p.grad for p in params}

    def clear_grads() -> None:
        for p in params:
            p.grad = None

    try:
        with preserved(model):
            clear_grads()
            measured = None
            if measure:
                try:
                    measured = _measure(model, inputs, kwargs, target, loss_fn, device, result)
                except _OOM as e:  # GPU-ONLY: the batch does not fit; the forecast below says why
                    result.notes.append(
                        f"the real step ran out of memory ({str(e).splitlines()[0]}); "
                        "layers measured on the meta device instead"
                    )
                    clear_grads()
                    if cuda:
                        result.notes.extend(_fragmentation_note(device, str(e)))
                        torch.cuda.empty_cache()
            if measured is None:
                measured = _run_step(model, batch, loss_fn, n, "meta", layers=True)
                result.device = "meta"
            clear_grads()
            tracker, stats = measured
            result.peak_bytes, result.peak_at = tracker.peak, tracker.peak_at
            result.layers = [
                LayerMemory(
                    name=name,
                    type=row.get("type", ""),
                    saved_bytes=row.get("saved_bytes", 0),
                    saved_tensors=row.get("saved_tensors", 0),
                    output_bytes=row.get("output_bytes", 0),
                    live_after=row.get("live_after", 0),
                )
                for name, row in stats.items()
            ]
            result.saved_bytes = sum(r.saved_bytes for r in result.layers)
            result.forecast = _fit(model, batch, loss_fn, sizes, forecast_on, device, result, clear_grads)
            if result.budget is not None and result.forecast.method == "meta":
                result.verified = _verify(model, batch, loss_fn, result, clear_grads)
    finally:
        for p, g in old_grads.items():
            p.grad = g
    return result


def _requested(message: str) -> int | None:
    """Bytes of 'Tried to allocate 20.00 GiB' in a CUDA out-of-memory message."""
    import re

    m = re.search(r"Tried to allocate ([0-9.]+) ([KMGT]i?B)", message)
    if not m:
        return None
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[m.group(2)[0]]
    return int(float(m.group(1)) * scale)


def _fragmentation_note(device: torch.device, message: str) -> list[str]:
    """GPU-ONLY: when the failed allocation would fit in the free memory taken together, say so."""
    from .cuda import cuda_memory

    wanted = _requested(message)
    index = device.index if device.index is not None else torch.cuda.current_device()
    devices = cuda_memory([index])
    why = devices[0].blocks(wanted) if devices and wanted else None
    return [why] if why else []


def _measure(model, inputs, kwargs, target, loss_fn, device, result):
    """The real step on the model's device; on CUDA also the allocator's peak (GPU-ONLY)."""
    if device.type != "cuda":
        return _one_step(model, inputs, kwargs, target, loss_fn, layers=True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    out = _one_step(model, inputs, kwargs, target, loss_fn, layers=True)
    torch.cuda.synchronize(device)
    result.allocator_peak = torch.cuda.max_memory_allocated(device) - base
    return out


def _fit(model, batch, loss_fn, sizes, forecast_on, device, result, clear_grads) -> Forecast:
    on: Any = "meta" if forecast_on == "meta" else device
    try:
        peaks = []
        for s in sizes:
            peaks.append(_run_step(model, batch, loss_fn, s, on, layers=False)[0].peak)
            clear_grads()
    except NbdebugError:
        raise
    except Exception as e:  # an op without a meta kernel (data-dependent shapes): use the real device
        if on != "meta":
            raise
        clear_grads()
        result.notes.append(f"meta run failed ({type(e).__name__}: {e}); forecast fit on {device} instead")
        return _fit(model, batch, loss_fn, sizes, "device", device, result, clear_grads)
    slope = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
    return Forecast(
        sizes=(int(sizes[0]), int(sizes[1])),
        step_peaks=(int(peaks[0]), int(peaks[1])),
        batch_bytes_per_example=result.batch_bytes / result.batch_size,
        slope=slope,
        intercept=peaks[0] - slope * sizes[0],
        fixed=result.param_bytes + result.buffer_bytes + result.optimizer_bytes,
        method=str(on),
    )


def _verify(model, batch, loss_fn, result, clear_grads, tries: int = 6) -> tuple[int, int] | None:
    """Run the formula's largest batch on meta (nothing allocated) and correct it until it fits.

    A step's peak is the largest of several terms linear in N, so a line through two small batches can
    under-estimate large ones; the meta run measures the real figure for the size that matters.
    """
    f, budget = result.forecast, result.budget
    n = f.max_batch(budget)
    if n < 1 or n >= 2**31:
        return None
    best: tuple[int, int] | None = None
    for _ in range(tries):
        try:
            peak = _run_step(model, batch, loss_fn, n, "meta", layers=False)[0].peak
        except Exception:
            return best
        finally:
            clear_grads()
        total = int(f.fixed + f.batch_bytes_per_example * n + peak)
        if total <= budget:
            best = (n, total) if best is None or n > best[0] else best
            step = math.floor((budget - total) / f.per_example) if f.per_example > 0 else 0
            if step < 1:
                return best
            n += step
        else:
            n -= max(1, math.ceil((total - budget) / f.per_example))
            if n < 1:
                return best
    return best
