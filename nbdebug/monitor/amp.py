"""Mixed precision seen through `torch.amp.GradScaler`: the loss the user computed, not the scaled one.

Under a GradScaler the loop reads `scaler.scale(loss).backward(); scaler.step(opt); scaler.update()`.
The tensor that reaches backward is the loss times the scale (2**16 at first), and the gradients carry
that factor until `scaler.unscale_(opt)`, which `scaler.step(opt)` calls before `opt.step()` unless the
loop called it already (per optimizer: its stage goes READY -> UNSCALED -> STEPPED until `update()`).
Two paths read gradients while they are still scaled: a fused optimizer (`Adam(fused=True)`), to which
`scaler.step` hands the scale instead of unscaling, and a watch without an optimizer, which reads the
gradients of a backward before any optimizer has stepped. And when the scaled gradients hold an Inf or
NaN, `scaler.step` skips `opt.step()`: that iteration is no training step at all.

`ScaleTracker` keeps, per monitor, which backward tensors came out of `scale()` (and the loss that went
in), whether the gradients are scaled now, and which `scaler.step` calls skipped the optimizer. It only
reads; the scaler does exactly what it would do unwatched.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch


class ScaleTracker:
    """What one `StepMonitor` needs to know about the GradScalers of the loop it watches."""

    def __init__(self, monitor: Any) -> None:
        self._monitor = weakref.ref(monitor)
        self._scaled: list[tuple[weakref.ref, torch.Tensor, Any]] = []  # (scaled, loss, scaler)
        self._scaler: Any = None  # the scaler whose factor the gradients carry now (None: unscaled)
        self._step_start: int | None = None
        self.skipped = 0  # scaler.step calls that skipped optimizer.step() (Inf/NaN in the gradients)

    def on_scaler(self, event: str, scaler: Any, *args: Any) -> None:
        """An event from `_core/intercept.py`: scale(outputs) -> scaled, unscale_(opt), step(opt)."""
        if event == "scale":
            self._remember(scaler, *args)
            return
        monitor = self._monitor()
        if monitor is None or not _holds(monitor, args[0]):
            return
        if event == "unscale":
            self._scaler = None
        elif event == "step-start":
            self._step_start = monitor.count
        elif event == "step-end":
            start, self._step_start = self._step_start, None
            if start is not None and monitor.count == start:  # opt.step() skipped: no training step
                self.skipped += 1
                self._scaler = None
                monitor.skipped_step()

    def _remember(self, scaler: Any, outputs: Any, scaled: Any) -> None:
        """Keep each scaled tensor with the loss it was made from (a list of outputs pairs up)."""
        pairs = [(outputs, scaled)] if isinstance(scaled, torch.Tensor) else []
        if isinstance(outputs, (list, tuple)) and isinstance(scaled, (list, tuple)):
            pairs = list(zip(outputs, scaled))
        self._scaled = [e for e in self._scaled if e[0]() is not None][-8:]
        for loss, out in pairs:
            if isinstance(loss, torch.Tensor) and isinstance(out, torch.Tensor) and out.numel() == 1:
                self._scaled.append((weakref.ref(out), loss.detach(), scaler))

    def loss_of(self, tensor: torch.Tensor) -> torch.Tensor:
        """The loss the user computed for a tensor about to be backward'd: the input of `scaler.scale`
        when `tensor` is its output (the gradients it makes are then scaled), else `tensor` itself."""
        for ref, loss, scaler in self._scaled:
            if ref() is tensor:
                self._scaler = scaler
                return loss.reshape(())
        return tensor

    def grad_divisor(self) -> float | torch.Tensor:
        """The factor the gradients carry now: the scale when they are read before `unscale_`, else 1.
        The scaler's own scale tensor when it has one (`get_scale()` reads it to the host: a sync)."""
        if self._scaler is None:
            return 1.0
        t = getattr(self._scaler, "_scale", None)
        if isinstance(t, torch.Tensor):
            t = t.detach().float()
            return torch.where(t > 0, t, torch.ones_like(t))
        scale = float(self._scaler.get_scale())
        return scale if scale > 0 else 1.0

    @property
    def scaled_by(self) -> Any:
        """The GradScaler whose scale the gradients carry now (None: they are unscaled)."""
        return self._scaler

    def stepped(self) -> None:
        """An optimizer step of the monitor finished: the next backward starts unscaled."""
        self._scaler = None


def _holds(monitor: Any, optimizer: Any) -> bool:
    """Whether `optimizer` steps the monitor's parameters (given, adopted, or holding them)."""
    if optimizer is monitor.stepping:
        return True
    own = {id(p) for p in monitor.params}
    return any(id(p) in own for g in getattr(optimizer, "param_groups", ()) for p in g["params"])
