"""Finding the learning-rate schedulers that drive an optimizer, to name them in a finding: the optimizer
does not know its schedulers, so they are looked up once, among the objects that refer to it."""

from __future__ import annotations

import gc
from typing import Any

import torch

_SETTINGS = (
    "step_size",
    "gamma",
    "milestones",
    "T_max",
    "eta_min",
    "total_steps",
    "max_lr",
    "factor",
    "patience",
)


def find_schedulers(optimizer: torch.optim.Optimizer) -> list[Any]:
    """Objects with an `optimizer` attribute that is `optimizer` and a `step` method, found among the
    objects referring to it (an instance, or its `__dict__`, depending on how Python stores attributes)."""
    out: list[Any] = []

    def take(obj: Any) -> None:
        if getattr(obj, "optimizer", None) is optimizer and hasattr(obj, "last_epoch") and obj not in out:
            out.append(obj)

    for ref in gc.get_referrers(optimizer):
        if isinstance(ref, dict):
            for owner in gc.get_referrers(ref):
                if getattr(owner, "__dict__", None) is ref:
                    take(owner)
        else:
            take(ref)
    return out


def describe_scheduler(s: Any) -> dict[str, Any]:
    """Name, how many times it was stepped (`last_epoch`) and its settings, e.g. StepLR(step_size=7, gamma=0.1)."""
    settings = {k: getattr(s, k) for k in _SETTINGS if isinstance(getattr(s, k, None), (int, float, list))}
    args = ", ".join(f"{k}={v}" for k, v in settings.items())
    return {
        "name": type(s).__name__,
        "label": f"{type(s).__name__}({args})",
        "steps": int(s.last_epoch),
        **settings,
    }
