"""A loss term that trains nothing: a scalar built from `.detach()`ed tensors added to the loss that is
backward'd (a GAN generator's adversarial term on detached logits, a feature-matching loss whose whole
difference was detached). Its value is in the loss, its gradient is not: the parameters it was meant to
move never see it.

Seen by a `TorchFunctionMode` active from the end of a watched network's training forward until the next
backward pass, on the first WINDOWS such windows and every EVERY-th after (at most MAX_OPS calls each, so
a forward with gradients on that no backward follows costs little). It follows which tensors derive from a
`.detach()` of a tensor in the graph with nothing that requires a gradient (a *detached* value), marks a
scalar that adds (or subtracts) a detached scalar to one that requires a gradient, carries the mark through
scalar operations (`loss / k`), and at `backward()` reports a marked loss. A detached tensor that goes back
into a network (`D(fake.detach())` in the discriminator's step) requires a gradient again and is no term;
residuals (`pred - target.detach()`) are tensors, not scalar terms of the loss.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .._core.hooks import HookSet
from .._core.intercept import unpatched
from .records import record_error

WINDOWS = 20  # forward-to-backward windows watched from the start ...
EVERY = 10  # ... then every EVERY-th
MAX_OPS = 5000  # calls one window follows at most
KEEP = 8  # marked backward passes whose values are kept

_DETACH = {torch.Tensor.detach, torch.detach}
_SUMS = {
    torch.add,
    torch.sub,
    torch.subtract,
    torch.Tensor.add,
    torch.Tensor.sub,
    torch.Tensor.__add__,
    torch.Tensor.__radd__,
    torch.Tensor.__sub__,
    torch.Tensor.__rsub__,
    torch.Tensor.__iadd__,
    torch.Tensor.__isub__,
}


def _tensors(args: Any, kwargs: dict) -> list[torch.Tensor]:
    out = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(t for t in a if isinstance(t, torch.Tensor))
    return out


class _Follow(TorchFunctionMode):
    def __init__(self, probe: DetachProbe) -> None:
        super().__init__()
        self.probe = probe
        self.ops = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = unpatched(func)(*args, **kwargs)  # a loss imported by name stays unseen, as without the mode
        self.ops += 1
        if self.ops <= MAX_OPS and not self.probe.done and isinstance(out, torch.Tensor):
            try:
                self.probe.seen(func, args, kwargs, out)
            except Exception as e:  # never break the user's training
                record_error(self.probe.internal_errors, "detached term", e)
        return out


class DetachProbe:
    """Follows detached values between the forwards of `roots` and the next backward (module docstring);
    `step()` gives the step a backward belongs to. `terms`: one dict per marked backward."""

    def __init__(self, roots: list[nn.Module], internal_errors: list[str], step: Callable[[], int]) -> None:
        self.roots = [r for r in roots if type(r).__name__ != "OptimizedModule"]  # compiled: no mode
        self.internal_errors = internal_errors
        self.step = step
        self.terms: list[dict[str, Any]] = []
        self.marked = 0  # backward passes of a marked loss
        self.windows = 0
        self._mode: _Follow | None = None
        self.done = False  # the window's backward came: the mode only waits to be taken off
        self._detached: dict[int, weakref.ref] = {}
        self._marked: dict[int, tuple[weakref.ref, torch.Tensor]] = {}  # id -> (ref, the detached term)

    def attach(self, hooks: HookSet) -> None:
        for root in self.roots:
            hooks.forward(root, self._forward_end)  # not after a forward that raised

    def _forward_end(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self._mode is not None and (self.done or self._mode.ops > MAX_OPS):
            self.release()  # the window closed at a backward (or no backward came): take the mode off now
        if self._mode is not None or not torch.is_grad_enabled() or not module.training:
            return
        self.windows += 1
        if self.windows > WINDOWS and self.windows % EVERY:
            return
        try:
            mode = _Follow(self)
            mode.__enter__()
            self._mode, self.done = mode, False
        except Exception as e:
            record_error(self.internal_errors, "detached term", e)

    def _has(self, table: dict[int, Any], t: torch.Tensor) -> Any:
        v = table.get(id(t))
        if v is None:
            return None
        ref = v[0] if isinstance(v, tuple) else v
        return v if ref() is t else None

    def seen(self, func: Any, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
        inputs = _tensors(args, kwargs)
        if func in _DETACH:
            if inputs and inputs[0].requires_grad:
                self._detached[id(out)] = weakref.ref(out)
            return
        if not inputs:
            return
        if not out.requires_grad:
            if not any(t.requires_grad for t in inputs) and any(self._has(self._detached, t) for t in inputs):
                self._detached[id(out)] = weakref.ref(out)
            return
        if out.numel() != 1:
            return
        marked = next((m for t in inputs if (m := self._has(self._marked, t)) is not None), None)
        if marked is not None:  # a marked loss scaled, summed further: still marked
            self._marked[id(out)] = (weakref.ref(out), marked[1])
            return
        if func in _SUMS:
            term = next(
                (
                    t
                    for t in inputs
                    if t.numel() == 1 and not t.requires_grad and self._has(self._detached, t)
                ),
                None,
            )
            if term is not None:
                self._marked[id(out)] = (weakref.ref(out), term.detach().reshape(()))

    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None:
        """At a backward's start: report a marked loss, and stop following (the window is over). The mode
        comes off here when it is on top of the stack; `loss.backward()` is itself a torch function, run
        inside the mode's own handler (where the mode is off the stack), so then at the next forward."""
        if phase != "start" or self._mode is None or self.done:
            return
        self.done = True
        try:
            for t in tensors:
                m = self._has(self._marked, t)
                if m is not None:
                    self.marked += 1
                    if len(self.terms) < KEEP:
                        self.terms.append({"step": self.step(), "term": m[1], "loss": t.detach().reshape(())})
                    break
        except Exception as e:
            record_error(self.internal_errors, "detached term", e)
        self._detached, self._marked = {}, {}
        stack = torch.overrides._get_current_function_mode_stack()
        if stack and stack[-1] is self._mode:
            self.release()

    def release(self) -> None:
        """Take the mode off (at the next forward after a backward, or when the watch ends)."""
        mode, self._mode = self._mode, None
        self._detached, self._marked = {}, {}
        if mode is None:
            return
        stack = torch.overrides._get_current_function_mode_stack()
        if stack and stack[-1] is mode:
            mode.__exit__(None, None, None)
        else:  # another mode was left on top: ours cannot be taken off safely
            record_error(self.internal_errors, "detached term", RuntimeError("mode stack changed"))

    def read(self) -> list[dict[str, Any]]:
        """The first KEEP marked backward passes as numbers: step, term, loss."""
        rows = self.terms
        if not rows:
            return []
        values = torch.stack([torch.stack([r["term"].float(), r["loss"].float()]) for r in rows]).tolist()
        return [{"step": r["step"], "term": v[0], "loss": v[1]} for r, v in zip(rows, values)]
