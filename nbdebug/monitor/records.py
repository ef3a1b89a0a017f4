"""What a `StepMonitor` keeps of a training run: one `StepRecord` per step, one `LayerSample` per layer per
sampled step (floats and small histograms, never a tensor), and `safe`, the guard every hook runs under
so that a monitor bug is recorded instead of breaking the user's forward or step."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_INTERNAL_ERRORS = 100  # kept per monitor; the count of the rest is still reported


def record_error(errors: list[str], where: str, e: BaseException) -> None:
    """Keep the message of an exception raised inside nbdebug (bounded), named after where it happened."""
    if len(errors) < MAX_INTERNAL_ERRORS:
        errors.append(f"{where}: {type(e).__name__}: {e}")


def safe(method: Callable) -> Callable:
    """A hook that records its own failure instead of breaking the user's forward or step."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as e:
            record_error(self.internal_errors, method.__name__, e)
        return None

    return wrapper


@dataclass(slots=True)
class LayerSample:
    """Summaries of one layer at one sampled step (a row of `Watch.layer_stats()`).

    A layer is a leaf module, or an activation function called in a `forward` (`torch.relu`,
    `torch.tanh`, `F.sigmoid`, ...), named after the layer whose output it received (`relu(fc1)`) or
    numbered in call order (`tanh#2`). `rows`: the examples (times positions) its dead fraction was
    taken over; `is_output`: its output is the model's output."""

    step: int
    layer: str
    type: str
    act_mean: float = math.nan
    act_std: float = math.nan
    act_zero_frac: float = math.nan
    dead_frac: float = math.nan
    saturated_frac: float = math.nan
    act_nonfinite: bool = False
    grad_norm: float = math.nan
    weight_norm: float = math.nan
    update_norm: float = math.nan
    update_ratio: float = math.nan
    act_hist: tuple[float, float, list[int]] | None = None
    grad_hist: tuple[float, float, list[int]] | None = None
    rows: int = 0
    is_output: bool = False


@dataclass(slots=True)
class StepRecord:
    """One optimizer step: the loss the backward passes since the previous step saw, and flags."""

    step: int
    loss: float = math.nan
    grad_norm: float = math.nan
    lr: float = math.nan
    batch_size: int = 0
    backwards: int = 0
    eval_mode: bool = False
    leaked: int = 0  # parameters whose gradient carried the previous step's gradient
    time: float = 0.0
