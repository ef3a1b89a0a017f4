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

# forward-to-backward windows watched from the start, then every EVERY-th: the mode stays on the stack
# until the next forward (a backward runs inside its handler), so each window also costs the optimizer
# step's torch calls; 5 windows see a term on its 2 backward passes, as the first 5 steps are sampled
WINDOWS = 5
EVERY = 50
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
    """The one mode every open window shares (two watches at once, or D and G, never stack two modes whose
    order a backward could not undo): it hands each call to the probes whose window is open."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if not _OPEN:  # every window closed, the mode not yet off the stack: pass calls straight through
            return unpatched(func)(*args, **kwargs)
        out = unpatched(func)(*args, **kwargs)  # a loss imported by name stays unseen, as without the mode
        if isinstance(out, torch.Tensor):
            for probe in list(_OPEN):
                probe.ops += 1
                if probe.ops <= MAX_OPS:
                    try:
                        probe.seen(func, args, kwargs, out)
                    except Exception as e:  # never break the user's training
                        record_error(probe.internal_errors, "detached term", e)
        return out


_OPEN: list[DetachProbe] = []  # probes whose window is open
_MODE: list[_Follow] = []  # the shared mode, while it is on the stack


def _open(probe: DetachProbe) -> None:
    if probe not in _OPEN:
        _OPEN.append(probe)
    if not _MODE:
        mode = _Follow()
        mode.__enter__()
        _MODE.append(mode)


def _close(probe: DetachProbe) -> None:
    """Close `probe`'s window; take the shared mode off once no window is open and it is on top of the
    stack (inside its own handler, as during `loss.backward()`, it is not: the next forward or the end
    of the watch takes it off)."""
    if probe in _OPEN:
        _OPEN.remove(probe)
    if _OPEN or not _MODE:
        return
    stack = torch.overrides._get_current_function_mode_stack()
    if stack and stack[-1] is _MODE[0]:
        _MODE.pop().__exit__(None, None, None)


def mode_pending() -> bool:
    """Whether the shared mode is still on the stack (tests: nothing is left once every watch ended)."""
    return bool(_MODE)


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
        self.ops = 0  # calls seen in the open window
        self._detached: dict[int, weakref.ref] = {}
        self._marked: dict[int, tuple[weakref.ref, torch.Tensor]] = {}  # id -> (ref, the detached term)
        self._leaf_armed = True  # a forward that bypasses the roots may open a window (`leaf_forward`)

    @property
    def open(self) -> bool:
        return self in _OPEN

    def attach(self, hooks: HookSet) -> None:
        for root in self.roots:
            hooks.forward(root, self._forward_end)  # not after a forward that raised

    def _forward_end(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self.open and self.ops > MAX_OPS:  # a window no backward closed: give it up
            self.release()
        elif not self.open:
            _close(self)  # a mode left on by a backward run inside its handler comes off here
        if self.open or not torch.is_grad_enabled() or not module.training:
            return
        self.windows += 1
        if self.windows > WINDOWS and self.windows % EVERY:
            return
        try:
            self.ops = 0
            _open(self)
        except Exception as e:
            record_error(self.internal_errors, "detached term", e)

    def leaf_forward(self, module: nn.Module) -> None:
        """A training forward that bypasses the roots' own (a LightningModule whose training_step calls
        `self.net(x)`) reached a leaf the monitor samples: the window opens there instead of at a root's end,
        under the same policy, once between two backward passes. It then also sees the rest of that forward
        (a leaf's detach inside the network goes back into it and requires a gradient again: no term)."""
        if not self._leaf_armed:
            return
        self._leaf_armed = False
        self._forward_end(module, (), None)

    def settle(self) -> None:
        """After an optimizer step: take the shared mode off the stack when no window is open (a backward run
        inside the mode's handler left it on; a root's next forward takes it off, but a forward that bypasses
        the roots has none, and every call until then would pass through it)."""
        if not self.open:
            _close(self)

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
        """At a backward's start: report a marked loss, and close the window."""
        if phase != "start":
            return
        self._leaf_armed = True
        if not self.open:
            return
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
        self.release()

    def release(self) -> None:
        """Close the window (a backward started, or the watch ends) and forget the window's tensors."""
        self._detached, self._marked = {}, {}
        _close(self)

    def read(self) -> list[dict[str, Any]]:
        """The first KEEP marked backward passes as numbers: step, term, loss."""
        rows = self.terms
        if not rows:
            return []
        values = torch.stack([torch.stack([r["term"].float(), r["loss"].float()]) for r in rows]).tolist()
        return [{"step": r["step"], "term": v[0], "loss": v[1]} for r, v in zip(rows, values)]
