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

import html
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map

from ._data import model_device, split_batch
from ._hooks import HookSet, preserved
from .errors import NbdebugError, describe

# Optimizer state per parameter once the first step() has run, in units of the parameter's size.
STATE_PER_PARAM = {"Adam": 2, "AdamW": 2, "Adamax": 2, "NAdam": 2, "RAdam": 2, "Adagrad": 1, "Rprop": 2}


def _fmt(n: float) -> str:
    from .memory import fmt_bytes

    return fmt_bytes(n)


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


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
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        try:
            key = _key(t)
        except Exception:  # a tensor without a storage (wrapper subclass): nothing allocated here
            return
        entry = self.live.get(key)
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


@dataclass(frozen=True)
class LayerMemory:
    """One module's share of a step: what it saved for backward, its output, bytes alive after it."""

    name: str
    type: str
    saved_bytes: int  # storages first saved for backward by this layer (parameters and inputs excluded)
    saved_tensors: int
    output_bytes: int
    live_after: int  # bytes created in this step still alive when the layer returned (forward curve)


@dataclass(frozen=True)
class Forecast:
    """peak(N) = fixed + intercept + per_example x N, fit from two batch sizes."""

    sizes: tuple[int, int]
    step_peaks: tuple[int, int]  # peak bytes of the step (activations, gradients, temporaries)
    batch_bytes_per_example: float
    slope: float  # step bytes per example
    intercept: float
    fixed: int  # parameters + buffers + optimizer state (present, or expected after the first step)
    method: str  # "meta" (nothing allocated) or the device the small batches ran on

    @property
    def per_example(self) -> float:
        return self.slope + self.batch_bytes_per_example

    def step_bytes(self, n: int) -> float:
        return self.intercept + self.slope * n

    def bytes_at(self, n: int) -> float:
        """Forecast peak memory for a batch of `n` examples."""
        return self.fixed + self.intercept + self.per_example * n

    def max_batch(self, budget: int) -> int:
        """Largest batch whose forecast peak fits in `budget` bytes (0 when not even one does)."""
        room = budget - self.fixed - self.intercept
        if self.per_example <= 0:
            return 0 if room < 0 else 2**31
        return max(int(math.floor(room / self.per_example)), 0)

    def formula(self) -> str:
        return (
            f"peak(N) ~ {_fmt(self.fixed)} (parameters, buffers, optimizer state) + "
            f"{_fmt(self.intercept)} + {_fmt(self.per_example)} x N"
        )


@dataclass
class StepMemory:
    """Result of `memory.step`: per-layer table, the measured peak, and the batch-size forecast."""

    layers: list[LayerMemory]
    batch_size: int
    device: str
    saved_bytes: int
    peak_bytes: int  # peak bytes created by the step above what existed before (dispatch tracker)
    peak_at: str  # the layer (forward) or "backward" where the peak was reached
    param_bytes: int
    buffer_bytes: int
    optimizer_bytes: int
    optimizer_note: str
    batch_bytes: int
    allocator_peak: int | None = None  # GPU only: torch.cuda.max_memory_allocated above the baseline
    forecast: Forecast | None = None
    forecast_note: str = ""
    budget: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame([vars(layer) for layer in self.layers])
        if frame.empty:
            frame = pd.DataFrame(columns=list(LayerMemory.__dataclass_fields__))
        return frame

    @property
    def max_batch(self) -> int | None:
        if self.forecast is None or self.budget is None:
            return None
        return self.forecast.max_batch(self.budget)

    @property
    def forecast_error(self) -> float | None:
        """Relative error of the forecast step peak at the measured batch size."""
        if self.forecast is None or not self.peak_bytes:
            return None
        return (self.forecast.step_bytes(self.batch_size) - self.peak_bytes) / self.peak_bytes

    def _lines(self) -> list[str]:
        lines = [
            f"one training step, batch {self.batch_size} on {self.device}: saved for backward "
            f"{_fmt(self.saved_bytes)}, step peak {_fmt(self.peak_bytes)} (reached {self.peak_at})",
            f"fixed: parameters {_fmt(self.param_bytes)}, buffers {_fmt(self.buffer_bytes)}, "
            f"optimizer state {_fmt(self.optimizer_bytes)} ({self.optimizer_note})",
        ]
        if self.allocator_peak is not None:
            lines.append(f"CUDA allocator peak above baseline: {_fmt(self.allocator_peak)}")
        if self.forecast is not None:
            f = self.forecast
            lines.append(f"forecast ({f.method}, batches {f.sizes[0]} and {f.sizes[1]}): {f.formula()}")
            err = self.forecast_error
            if err is not None:
                lines.append(
                    f"check at N={self.batch_size}: forecast step peak {_fmt(f.step_bytes(self.batch_size))}"
                    f" vs measured {_fmt(self.peak_bytes)} ({err:+.1%})"
                )
            if self.budget is not None:
                lines.append(f"largest batch that fits in {_fmt(self.budget)}: {self.max_batch}")
        elif self.forecast_note:
            lines.append(f"no forecast: {self.forecast_note}")
        lines.extend(self.notes)
        return lines

    def __repr__(self) -> str:
        return f"StepMemory(batch={self.batch_size}, peak={_fmt(self.peak_bytes)})"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        from .plots import figure_png, png_html
        from .plots.memory import plot_step

        table = self.to_frame()
        text = "\n".join([*self._lines(), "", table.to_string(index=False)])
        shown = table.copy()
        for col in ("saved_bytes", "output_bytes", "live_after"):
            if col in shown:
                shown[col] = shown[col].map(_fmt)
        body = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        figure = png_html(figure_png(plot_step(self)), alt="activation memory per layer")
        out = (
            f'<div class="nbdebug-memory-step"><ul>{body}</ul>{figure}'
            f"{shown.to_html(index=False, border=0)}</div>"
        )
        return {"text/plain": text, "text/html": out}


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


def _unique_bytes(tensors: Any) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta" and t.layout == torch.strided:
            seen.setdefault(_key(t), _nbytes(t))
    return sum(seen.values())


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
    params: dict[str, torch.Tensor] | None,
    layers: bool,
) -> tuple[LiveBytes, dict[str, dict[str, Any]]]:
    """Forward + backward once under the tracker; per-layer figures when `layers`."""
    tracker = LiveBytes()
    stack: list[str] = []
    stats: dict[str, dict[str, Any]] = {}
    names = {m: n or type(model).__name__ for n, m in model.named_modules()}
    exclude = {_key(t) for t in (*model.parameters(), *model.buffers()) if t.layout == torch.strided}
    exclude |= {_key(t) for t in (*inputs, *kwargs.values()) if isinstance(t, torch.Tensor)}
    if params is not None:
        exclude |= {_key(t) for t in params.values()}
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
        row["output_bytes"] += _unique_bytes(t for t in tree_leaves(output) if isinstance(t, torch.Tensor))
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
            if params is None:
                out = model(*inputs, **kwargs)
            else:
                out = torch.func.functional_call(model, params, inputs, kwargs)
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
    """One measured step at batch size `n` on `device` ('meta' runs with meta parameters)."""
    inputs, kwargs, target = split_batch(batch)
    resize = lambda t: _resize(t, n, device)  # noqa: E731
    inputs, kwargs, target = tree_map(resize, inputs), tree_map(resize, kwargs), tree_map(resize, target)
    params = None
    if str(device) == "meta":
        params = {
            k: torch.empty_like(v, device="meta").requires_grad_(v.requires_grad)
            for k, v in (*model.named_parameters(), *model.named_buffers())
        }
    return _one_step(model, inputs, kwargs, target, loss_fn, params, layers)


def step(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    sizes: tuple[int, int] = (2, 4),
    budget: int | str | None = None,
    forecast_on: str = "meta",
) -> StepMemory:
    """Measure one forward + backward of `model` on `batch`, per layer, and forecast peak vs batch size.

    The optimizer is not stepped and the model comes back unchanged (mode, buffers, gradients, RNG).
    `sizes`: the two small batch sizes the forecast is fit from; `forecast_on`: "meta" (default, nothing
    allocated, any size) or "device" (the model's device, real data repeated to size). `budget` ("12GB",
    bytes) answers the largest batch that fits; on CUDA it defaults to the device's total memory.
    """
    from .memory import parse_bytes

    if not isinstance(model, nn.Module):
        raise NbdebugError(f"model must be an nn.Module, got {describe(model)}")
    if not callable(loss_fn):
        raise NbdebugError(f"loss_fn must be callable (an nn.Module or a function), got {describe(loss_fn)}")
    if len(sizes) != 2 or sizes[0] == sizes[1] or min(sizes) < 1:
        raise NbdebugError(f"sizes must be two different positive batch sizes, got {sizes!r}")
    if forecast_on not in ("meta", "device"):
        raise NbdebugError(f"forecast_on must be 'meta' or 'device', got {forecast_on!r}")
    inputs, kwargs, target = split_batch(batch)
    n = _batch_size(inputs, kwargs, target)
    device = model_device(model)
    budget_bytes = parse_bytes(budget) if budget is not None else None
    params = list(model.parameters())
    param_bytes = _unique_bytes(params)
    buffer_bytes = _unique_bytes(model.buffers())
    opt_bytes, opt_note = _optimizer_bytes(model, optimizer)
    batch_bytes = _unique_bytes(
        t for t in tree_leaves((inputs, kwargs, target)) if isinstance(t, torch.Tensor)
    )
    notes: list[str] = []

    old_grads = {p: p.grad for p in params}
    cuda = device.type == "cuda"
    allocator_peak = None
    try:
        with preserved(model):
            for p in params:
                p.grad = None
            if cuda:  # GPU-ONLY: the allocator's own peak, to check the tracker against
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            tracker, stats = _one_step(model, inputs, kwargs, target, loss_fn, None, layers=True)
            if cuda:
                torch.cuda.synchronize(device)
                allocator_peak = torch.cuda.max_memory_allocated(device) - base
                if budget_bytes is None:
                    budget_bytes = torch.cuda.get_device_properties(device).total_memory
            for p in params:
                p.grad = None
            forecast, forecast_note = None, ""
            try:
                on = "meta" if forecast_on == "meta" else device
                peaks = tuple(_run_step(model, batch, loss_fn, s, on, layers=False)[0].peak for s in sizes)
                for p in params:
                    p.grad = None
            except NbdebugError:
                raise
            except Exception as e:  # an op without a meta kernel: fall back to the real device
                if forecast_on != "meta":
                    raise
                notes.append(f"meta forecast failed ({type(e).__name__}: {e}); fit on {device} instead")
                on = device
                for p in params:
                    p.grad = None
                peaks = tuple(_run_step(model, batch, loss_fn, s, on, layers=False)[0].peak for s in sizes)
            slope = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
            forecast = Forecast(
                sizes=tuple(sizes),
                step_peaks=peaks,
                batch_bytes_per_example=batch_bytes / n,
                slope=slope,
                intercept=peaks[0] - slope * sizes[0],
                fixed=param_bytes + buffer_bytes + opt_bytes,
                method=str(on),
            )
    finally:
        for p, g in old_grads.items():
            p.grad = g
    layer_rows = [
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
    return StepMemory(
        layers=layer_rows,
        batch_size=n,
        device=str(device),
        saved_bytes=sum(r.saved_bytes for r in layer_rows),
        peak_bytes=tracker.peak,
        peak_at=tracker.peak_at,
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        optimizer_bytes=opt_bytes,
        optimizer_note=opt_note,
        batch_bytes=batch_bytes,
        allocator_peak=allocator_peak,
        forecast=forecast,
        forecast_note=forecast_note,
        budget=budget_bytes,
        notes=notes,
    )
