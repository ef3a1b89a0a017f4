"""What each parameter's `.grad` did between two optimizer steps, read from the tensor's identity and
version counter (no copy, no device sync): was it zeroed (`zero_grad()` replaces it with None, `zero_()`
bumps its version) before a backward pass accumulated onto it, and did a step consume gradients carried
over from the previous step (the missing-zero_grad bug). And the per-step gradient norms, in a few torch
calls whatever the number of parameters: this runs on every step.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from .._core.tensors import stack_floats
from .pending import LeakFlags


class GradStates:
    """What is known about each parameter's `.grad` since the last optimizer step (no copies), as parallel
    lists indexed like the monitor's parameters: `refs` a weak reference to the `.grad` tensor last seen (a
    strong one would keep the last step's gradients alive after `zero_grad()` freed them: one more set of
    gradients in memory through every forward and backward), `vers` its version counter then, `zeroed` whether
    a zero_grad happened since the last step (a 0-dim bool device tensor while unread: an in-place `zero_()`),
    `carried` whether a backward accumulated onto the last step's gradient (bool, or a device tensor). Lists and
    not one object per parameter: this runs twice on every backward, and the common cases (every `.grad` set to
    None by `zero_grad()`, or every one zeroed before the backward accumulated) are a few list operations
    instead of a Python loop over the parameters."""

    __slots__ = ("refs", "vers", "zeroed", "carried")

    def __init__(self, n: int) -> None:
        self.refs: list[weakref.ref | None] = [None] * n
        self.vers: list[int] = [-1] * n
        self.zeroed: list = [True] * n
        self.carried: list = [False] * n

    def check_zeroed(self, params: list[nn.Parameter]) -> None:
        """At a backward pass's start: note, per parameter, whether its gradient was zeroed since last seen."""
        grads = [p.grad for p in params]
        if all(g is None for g in grads):  # zero_grad() set every gradient to None
            n = len(grads)
            self.refs, self.vers, self.zeroed, self.carried = grads, [-1] * n, [True] * n, [False] * n
            return
        objs, refs, vers, zeroed, carried = self.objs(), self.refs, self.vers, self.zeroed, self.carried
        for i, g in enumerate(grads):
            if g is None or g is not objs[i]:
                zeroed[i], carried[i], refs[i] = True, False, _ref(g)
                vers[i] = g._version if g is not None else -1
            elif g._version != vers[i]:
                # modified in place since we last looked: zero_() (set_to_none=False, or d2l's
                # `w.grad.zero_()`) or a rescale. Whether it is all zeros stays a device tensor (reading it
                # here would wait for the device on every backward); it is read with the step's numbers
                if zeroed[i] is not True:
                    zeroed[i] = ~g.detach().any()
                vers[i] = g._version

    def mark_accumulated(self, params: list[nn.Parameter]) -> None:
        """At a backward pass's end: a gradient it wrote onto one that was not zeroed carries the last step's."""
        if all(z is True for z in self.zeroed):
            # every gradient was zeroed since the last step: nothing can be carried over until the next one,
            # whatever happens to them meanwhile (the next step's `seen` notes them afresh)
            return
        grads = [p.grad for p in params]
        objs, refs, vers, zeroed, carried = self.objs(), self.refs, self.vers, self.zeroed, self.carried
        for i, g in enumerate(grads):
            if g is None:
                continue
            touched = g is not objs[i] or g._version != vers[i]
            if touched and zeroed[i] is False:
                carried[i] = True
            elif touched and zeroed[i] is not True:  # a device tensor: carried unless it was zeroed
                carried[i] = ~zeroed[i] if carried[i] is False else carried[i] | ~zeroed[i]
            refs[i], vers[i] = weakref.ref(g), g._version

    def leak_flags(self, params: list[nn.Parameter]) -> LeakFlags | None:
        """At an optimizer step: the gradients that may carry the previous step's values into this one."""
        if all(c is False for c in self.carried):
            return None
        hits = [
            (i, c)
            for i, (p, c, o) in enumerate(zip(params, self.carried, self.objs()))
            if c is not False and p.grad is o
        ]
        return LeakFlags([i for i, _ in hits], [c for _, c in hits]) if hits else None

    def seen(self, params: list[nn.Parameter], stepped: bool) -> None:
        """The gradients as they are now are the known ones; after an optimizer step (`stepped`) none of
        them counts as zeroed or carried any more."""
        grads = [p.grad for p in params]
        self.refs = [_ref(g) for g in grads]
        self.vers = [g._version if g is not None else -1 for g in grads]
        if stepped:
            n = len(grads)
            self.zeroed, self.carried = [False] * n, [False] * n

    def objs(self) -> list[torch.Tensor | None]:
        """The `.grad` tensors last seen, None where there was none or it was freed since."""
        return [r() if r is not None else None for r in self.refs]

    def forget(self) -> None:
        """Drop what is known of the gradient tensors (on exit)."""
        self.refs = [None] * len(self.refs)


def _ref(g: torch.Tensor | None) -> weakref.ref | None:
    return weakref.ref(g) if g is not None else None


def grad_norms(grads: list[torch.Tensor], scale: float | torch.Tensor) -> torch.Tensor:
    """Each gradient's norm, divided by the GradScaler factor it still carries, as one float tensor."""
    with torch.no_grad():
        per = stack_floats(torch._foreach_norm(grads))  # half-precision norms, several devices: converted
        return per if isinstance(scale, float) and scale == 1.0 else per / scale
