"""What a watched loss function received, kept as numbers: the evidence for the loss-input checks
(the input's space: softmax before cross-entropy, raw scores to NLLLoss, a softmax over the wrong dim;
sigmoid before BCE-with-logits, target broadcasting, the initial loss)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._core.loss_space import Space, judge

CLASSIFICATION = ("cross_entropy", "nll_loss")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
CUSTOM = "custom loss module"


@dataclass
class LossCall:
    """What the first training call of one loss function received (kept as numbers, not tensors)."""

    name: str
    step: int
    value: float
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    input_min: float
    input_max: float
    rows_sum_to_one: bool
    grad_fn: str
    reduction: str
    weighted: bool
    n_classes: int | None
    baseline: float | None = None  # loss of a predictor that ignores the input (see `loss_baseline`)
    space: Space | None = None  # the input in a space the loss does not expect (see `_core/loss_space.py`)


def describe_call(
    name: str,
    x: torch.Tensor,
    t: torch.Tensor | None,
    input: torch.Tensor,
    output: torch.Tensor,
    kwargs: dict,
    step: int,
) -> LossCall:
    """The first training call of loss `name`: shapes, value range, whether rows sum to one, the node that
    produced the input, reduction and weighting, and the loss of a predictor that ignores its input."""
    xf = x.float()
    rows = False
    if x.dim() >= 2 and x.shape[1] > 1:
        rows = bool(((xf.sum(1) - 1).abs() < 1e-3).all())
    grad_fn = type(input.grad_fn).__name__ if input.grad_fn is not None else ""
    value = float(output.detach()) if output.numel() == 1 else math.nan
    return LossCall(
        name=name,
        step=step,
        value=value,
        input_shape=tuple(x.shape),
        target_shape=tuple(t.shape) if t is not None else None,
        input_min=float(xf.min()) if x.numel() else math.nan,
        input_max=float(xf.max()) if x.numel() else math.nan,
        rows_sum_to_one=rows,
        grad_fn=grad_fn,
        reduction=str(kwargs.get("reduction", "mean")),
        weighted=kwargs.get("weight") is not None
        or kwargs.get("pos_weight") is not None
        or bool(kwargs.get("label_smoothing", 0.0)),
        n_classes=int(x.shape[1]) if name in CLASSIFICATION and x.dim() >= 2 else None,
        baseline=loss_baseline(name, x, t),
        space=judge(name, x, t, int(kwargs.get("ignore_index", -100))),
    )


def loss_baseline(name: str, x: torch.Tensor, t: torch.Tensor | None) -> float | None:
    """The loss of a predictor that ignores its input: uniform over C classes (ln C), a coin (ln 2),
    or the targets' mean (their variance, for MSE). None for other losses."""
    if name in CLASSIFICATION and x.dim() >= 2 and x.shape[1] > 1:
        return math.log(x.shape[1])
    if name in BINARY:
        return math.log(2)
    if name == "mse_loss" and t is not None and t.is_floating_point() and t.numel() > 1:
        return float(t.float().var())
    return None
