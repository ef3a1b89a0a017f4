"""Losses for class imbalance, suggested by the `class-imbalance` finding.

`FocalLoss` (Lin et al. 2017, "Focal Loss for Dense Object Detection") scales each example's
cross-entropy by `(1 - p_t) ** gamma`, so the many easy majority-class examples stop dominating the
gradient; `alpha` adds per-class weights. At `gamma=0` it is exactly `nn.CrossEntropyLoss(weight=alpha)`,
including the weighted mean, `ignore_index` and K-dimensional inputs, so it is a drop-in replacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._core.errors import NbdebugError, describe


class FocalLoss(nn.Module):
    """Multi-class focal loss on logits: `-alpha[y] * (1 - p_y) ** gamma * log p_y`.

    Args:
        gamma: focusing parameter; 0 gives cross-entropy, 2 is the paper's default.
        alpha: None, a scalar (multiplies every term), or one weight per class (like
            `CrossEntropyLoss(weight=...)`; `nbdebug.predictions(...).class_weights` computes one).
        reduction: "mean" (weighted mean, as CrossEntropyLoss does with `weight`), "sum" or "none".
        ignore_index: targets equal to this contribute nothing (as in CrossEntropyLoss).
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | torch.Tensor | None = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise NbdebugError(f"FocalLoss gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise NbdebugError(f"FocalLoss reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma = float(gamma)
        self.reduction = reduction
        self.ignore_index = ignore_index
        self.scalar_alpha: float | None = None
        weight: torch.Tensor | None = None
        if isinstance(alpha, (int, float)):
            self.scalar_alpha = float(alpha)
        elif alpha is not None:
            weight = torch.as_tensor(alpha, dtype=torch.float32).flatten()
        self.register_buffer("weight", weight)

    def extra_repr(self) -> str:
        alpha = self.scalar_alpha if self.weight is None else f"per-class[{self.weight.numel()}]"
        return f"gamma={self.gamma}, alpha={alpha}, reduction={self.reduction!r}"

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if input.dim() < 2:
            raise NbdebugError(
                f"FocalLoss expects logits of shape (N, C) or (N, C, d1, ...), got {describe(input)}"
            )
        n_classes = input.shape[1]
        expected = (input.shape[0], *input.shape[2:])
        if tuple(target.shape) != expected or target.is_floating_point():
            raise NbdebugError(
                f"FocalLoss expects integer class indices of shape {expected} for input "
                f"{tuple(input.shape)}, got target {describe(target)}"
            )
        if self.weight is not None and self.weight.numel() != n_classes:
            raise NbdebugError(
                f"FocalLoss alpha has {self.weight.numel()} class weights but the input has {n_classes} classes"
            )
        valid = target != self.ignore_index
        safe_target = torch.where(valid, target, torch.zeros_like(target))
        if bool(((safe_target < 0) | (safe_target >= n_classes)).any()):
            bad = sorted(set(safe_target[(safe_target < 0) | (safe_target >= n_classes)].tolist()))[:5]
            raise NbdebugError(f"FocalLoss target has class indices {bad} outside [0, {n_classes})")
        logp = F.log_softmax(input, dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
        loss = -logp
        if self.gamma != 0:
            # (1 - p)^gamma, with 1 - p = -expm1(log p) for precision near p = 1; the clamp keeps the
            # gradient finite when p rounds to exactly 1 (d/dx x^gamma is infinite at 0 for gamma < 1)
            loss = loss * (-torch.expm1(logp)).clamp_min(1e-12) ** self.gamma
        w = valid.to(loss.dtype)
        if self.weight is not None:
            w = w * self.weight.to(loss.device, loss.dtype)[safe_target]
        loss = loss * w
        scale = 1.0 if self.scalar_alpha is None else self.scalar_alpha
        if self.reduction == "none":
            return loss * scale
        if self.reduction == "sum":
            return loss.sum() * scale
        # weighted mean exactly as CrossEntropyLoss computes it: sum(w_i * l_i) / sum(w_i)
        return loss.sum() / w.sum() * scale
