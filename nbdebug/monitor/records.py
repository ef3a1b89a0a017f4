"""What a `StepMonitor` keeps of each step and each sampled layer: numbers, never tensors beyond a step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class LayerSample:
    """Summaries of one layer at one sampled step (a row of `Watch.layer_stats()`)."""

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


@dataclass(slots=True)
class _GradState:
    """What we know about one parameter's .grad since the last optimizer step (no copies)."""

    obj: Any = None  # the .grad tensor object last seen
    ver: int = -1  # its version counter then
    zeroed: bool = True  # a zero_grad happened since the last step
    carried: bool = False  # a backward accumulated onto the last step's gradient
