"""Wiring mistakes around the loss that one look settles, seen while `watch` listens (events from
`_core/intercept.py`) and kept as numbers for `pitfall_checks.py`:

- clipping gradients that still carry GradScaler's scale: `clip_grad_norm_(params, max_norm)` between
  `scaler.scale(loss).backward()` and `scaler.step(opt)` without `scaler.unscale_(opt)` clips the scaled
  norm (x65536) to max_norm, so every update shrinks by the scale (the AMP docs' recipe unscales first);
- `torch.log(softmax(x))` whose softmax output holds exact zeros: the log is -inf there and the gradient
  NaN (`log_softmax` computes the same values without underflow). Found by a look at the loss's autograd
  graph on its first backward passes, then one device-side count per step, read only at diagnosis;
- the first validation call of a classification loss, whose input space is judged like a training
  call's (a softmax before the validation loss is the same bug, in the numbers the user reads).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import torch

from .._core.loss_space import log_of_softmax
from .losscalls import CLASSIFICATION, LossCall, describe_call

GRAPH_LOOKS = 3  # backward passes whose graph is searched for log(softmax(...)) before giving up
ZEROS_HELD = 64  # per-step zero counts kept on the device before they are read (one sync per 64 steps)


def _user_frame() -> types.FrameType | None:
    """The innermost frame of the user's code: the first one outside nbdebug and torch."""
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(("nbdebug.", "torch.")):
        frame = frame.f_back
    return frame


def user_names(*objects: Any) -> list[str | None]:
    """What the user's code calls each of `objects` where the clip was called: a local (or global) name,
    or `self.<attribute>` inside a method (TorchSSL's `self.optimizer`); None when it has no name there."""
    frame = _user_frame()
    if frame is None:
        return [None] * len(objects)
    scopes = [frame.f_locals, frame.f_globals]
    owner = frame.f_locals.get("self")
    attrs = getattr(owner, "__dict__", {}) if owner is not None else {}
    out: list[str | None] = []
    for obj in objects:
        name = next(
            (k for scope in scopes for k, v in scope.items() if v is obj and not k.startswith("_")), None
        )
        if name is None:
            name = next((f"self.{k}" for k, v in attrs.items() if v is obj), None)
        out.append(name)
    return out


class PitfallTracker:
    """What one `Watch` keeps for the pitfalls above; every method only reads the user's tensors."""

    def __init__(self) -> None:
        self.eval_calls: dict[str, LossCall] = {}
        self.clip: dict[str, Any] | None = None  # the first clip of scaled gradients
        self.clips_scaled = 0
        self.log_zero: dict[str, Any] | None = None  # the first step whose log(softmax) hit an exact 0
        self._looks = 0
        self._found = False
        self._zeros: list[tuple[int, torch.Tensor, int]] = []  # (step, zero count on device, size)

    def on_clip(self, monitor: Any, kind: str, params: list, limit: Any, total: Any) -> None:
        """A clip of `params` ("norm" with the total norm it computed, or "value"): kept when the
        gradients of the monitor's parameters still carry a GradScaler's scale."""
        scaler = monitor.amp.scaled_by
        if scaler is None:  # (asked first: a Trainer clips every step, and this runs with each clip)
            return
        own = {id(p) for p in monitor.params}
        if not any(id(p) in own for p in params):
            return
        if self.clip is not None:  # already named: count it, without reading the scale (a device sync)
            self.clips_scaled += 1
            return
        scale = float(scaler.get_scale())
        if scale <= 1:
            return
        self.clips_scaled += 1
        grads = [p.grad.detach() for p in params if p.grad is not None]
        if not grads:
            return
        with torch.no_grad():
            if kind == "norm" and isinstance(total, torch.Tensor):
                scaled = float(total)
            elif kind == "norm":
                scaled = float(torch.stack([g.float().norm() for g in grads]).norm())
            else:
                scaled = max(float(g.abs().max()) for g in grads)
        scaler_name, opt_name = user_names(scaler, monitor.stepping)
        self.clip = {
            "scaler_name": scaler_name or "scaler",
            "optimizer_name": opt_name or "optimizer",
            "step": monitor.count + 1,
            "kind": kind,
            "scale": scale,
            "limit": float(limit),
            "before": scaled / scale,  # the true (unscaled) norm, or largest |gradient| for "value"
            "after": min(scaled, float(limit)) / scale,  # what the optimizer gets once step() unscales
        }

    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str, step: int) -> None:
        """At a backward's start: count the exact zeros of a log(softmax(...)) in the loss's graph."""
        if phase != "start" or self.log_zero is not None or (not self._found and self._looks >= GRAPH_LOOKS):
            return
        for t in tensors:
            if t.numel() != 1 or t.grad_fn is None:
                continue
            probs = log_of_softmax(t)
            if probs is None:
                self._looks += 1
                continue
            self._found = True
            with torch.no_grad():
                self._zeros.append((step, (probs == 0).sum(), probs.numel()))
        if len(self._zeros) >= ZEROS_HELD:  # a long stretch without a diagnosis: read them now
            self._read_zeros()

    def on_eval_loss(
        self,
        name: str,
        x: torch.Tensor,
        t: Any,
        input: torch.Tensor,
        output: torch.Tensor,
        kwargs: dict,
        step: int,
    ) -> None:
        """The first validation call of each classification loss."""
        if name in CLASSIFICATION and name not in self.eval_calls:
            self.eval_calls[name] = describe_call(name, x, t, input, output, kwargs, step)

    def _read_zeros(self) -> dict[str, Any] | None:
        if self.log_zero is None and self._zeros:
            counts = torch.stack([z for _, z, _ in self._zeros]).tolist()
            for (step, _, n), c in zip(self._zeros, counts):
                if c:
                    self.log_zero = {"step": step, "zeros": int(c), "size": n}
                    break
            self._zeros.clear()
        return self.log_zero

    def run_fields(self) -> dict[str, Any]:
        """The `RunData` fields this tracker fills."""
        return {
            "eval_loss_calls": list(self.eval_calls.values()),
            "clip_scaled": None if self.clip is None else {**self.clip, "count": self.clips_scaled},
            "log_of_softmax": self._read_zeros(),
        }
