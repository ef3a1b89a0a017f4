"""What each parameter's `.grad` did between two optimizer steps, read from the tensor's identity and
version counter (no copy, no device sync): was it zeroed (`zero_grad()` replaces it with None, `zero_()`
bumps its version) before a backward pass accumulated onto it, and did a step consume gradients carried
over from the previous step (the missing-zero_grad bug). And the per-step gradient norms, in a few torch
calls whatever the number of parameters: this runs on every step.
"""

from __future__ import annotations

import torch
from torch import nn

from .._core.tensors import stack_floats
from .pending import LeakFlags
from .records import GradState


def check_zeroed(params: list[nn.Parameter], states: list[GradState]) -> None:
    """At a backward pass's start: note, per parameter, whether its gradient was zeroed since last seen."""
    for p, s in zip(params, states):
        g = p.grad
        if g is None or g is not s.obj:
            s.zeroed, s.carried, s.obj = True, False, g
            s.ver = g._version if g is not None else -1
        elif g._version != s.ver:
            # modified in place since we last looked: zero_() (set_to_none=False, or d2l's
            # `w.grad.zero_()`) or a rescale. Whether it is all zeros stays a device tensor (reading it
            # here would wait for the device on every backward); it is read with the step's numbers
            if s.zeroed is not True:
                s.zeroed = ~g.detach().any()
            s.ver = g._version


def mark_accumulated(params: list[nn.Parameter], states: list[GradState]) -> None:
    """At a backward pass's end: a gradient it wrote onto one that was not zeroed carries the last step's."""
    for p, s in zip(params, states):
        g = p.grad
        if g is None:
            continue
        touched = g is not s.obj or g._version != s.ver
        if touched and s.zeroed is False:
            s.carried = True
        elif touched and s.zeroed is not True:  # a device tensor: carried unless it was zeroed
            s.carried = ~s.zeroed if s.carried is False else s.carried | ~s.zeroed
        s.obj, s.ver = g, g._version


def leak_flags(params: list[nn.Parameter], states: list[GradState]) -> LeakFlags | None:
    """At an optimizer step: the gradients that may carry the previous step's values into this one."""
    carried = [
        (i, s.carried)
        for i, (p, s) in enumerate(zip(params, states))
        if s.carried is not False and p.grad is s.obj
    ]
    return LeakFlags([i for i, _ in carried], [c for _, c in carried]) if carried else None


def grad_norms(grads: list[torch.Tensor], scale: float | torch.Tensor) -> torch.Tensor:
    """Each gradient's norm, divided by the GradScaler factor it still carries, as one float tensor."""
    with torch.no_grad():
        per = stack_floats(torch._foreach_norm(grads))  # half-precision norms, several devices: converted
        return per if isinstance(scale, float) and scale == 1.0 else per / scale
