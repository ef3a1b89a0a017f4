"""What kind of loss a `loss_fn` is, what it expects, and what it should read at chance level.

Shared by `check` and `overfit`. A loss is recognised from its class (`nn.CrossEntropyLoss`), from the
functional it is (`F.cross_entropy`), or, for a lambda wrapping one of those, from the autograd node
that produced the loss value (`NllLossBackward0` fed by `LogSoftmaxBackward0` is cross-entropy).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._core.errors import NbdebugError, describe

CLASSIFICATION = ("ce", "nll")
BINARY = ("bce", "bce_logits")
ELEMENTWISE = ("bce", "bce_logits", "mse", "l1", "huber")

_MODULES: tuple[tuple[type, str], ...] = (
    (nn.CrossEntropyLoss, "ce"),
    (nn.NLLLoss, "nll"),
    (nn.BCEWithLogitsLoss, "bce_logits"),
    (nn.BCELoss, "bce"),
    (nn.MSELoss, "mse"),
    (nn.L1Loss, "l1"),
    (nn.SmoothL1Loss, "huber"),
    (nn.HuberLoss, "huber"),
)
_FUNCTIONS: dict[Callable, str] = {
    F.cross_entropy: "ce",
    F.nll_loss: "nll",
    F.binary_cross_entropy_with_logits: "bce_logits",
    F.binary_cross_entropy: "bce",
    F.mse_loss: "mse",
    F.l1_loss: "l1",
    F.smooth_l1_loss: "huber",
    F.huber_loss: "huber",
}
_NODES = {
    "BinaryCrossEntropyWithLogitsBackward0": "bce_logits",
    "BinaryCrossEntropyBackward0": "bce",
    "MseLossBackward0": "mse",
    "L1LossBackward0": "l1",
    "SmoothL1LossBackward0": "huber",
    "HuberLossBackward0": "huber",
}
NAMES = {
    "ce": "CrossEntropyLoss",
    "nll": "NLLLoss",
    "bce": "BCELoss",
    "bce_logits": "BCEWithLogitsLoss",
    "mse": "MSELoss",
    "l1": "L1Loss",
    "huber": "SmoothL1Loss/HuberLoss",
}


def loss_kind(loss_fn: Any) -> str | None:
    """'ce', 'nll', 'bce', 'bce_logits', 'mse', 'l1', 'huber', or None for a loss we cannot name."""
    for cls, kind in _MODULES:
        if isinstance(loss_fn, cls):
            return kind
    try:
        return _FUNCTIONS.get(loss_fn)
    except TypeError:  # unhashable callable
        return None


def kind_from_graph(loss: torch.Tensor) -> str | None:
    """Recognise a loss computed inside a lambda from the autograd node that produced it."""
    node = loss.grad_fn
    chain = []
    n = node
    while n is not None and len(chain) < 4:  # hand-written losses: (o - t).abs().mean(), ((o - t)**2).mean()
        chain.append(n.name())
        parents = [f for f, _ in n.next_functions if f is not None]
        n = parents[0] if parents else None
    if chain[:3] == ["MeanBackward0", "AbsBackward0", "SubBackward0"]:
        return "l1"
    if chain[:3] == ["MeanBackward0", "PowBackward0", "SubBackward0"]:
        return "mse"
    # reduction='mean' over a 'none' loss, or a loss times a constant: look one or two nodes down
    for _ in range(3):
        if node is None:
            return None
        name = node.name()
        if name in _NODES:
            return _NODES[name]
        if name.startswith("NllLoss"):
            parents = [f for f, _ in node.next_functions if f is not None]
            return "ce" if any(f.name().startswith("LogSoftmax") for f in parents) else "nll"
        nxt = [f for f, _ in node.next_functions if f is not None]
        node = nxt[0] if len(nxt) == 1 else None
    return None


def reduction(loss_fn: Any) -> str:
    return getattr(loss_fn, "reduction", "mean")


def ignore_index(loss_fn: Any) -> int:
    return getattr(loss_fn, "ignore_index", -100)


def classes_of(kind: str | None, output: Any) -> int | None:
    """Number of classes a classification output has (dim 1), None where it does not apply."""
    if kind in CLASSIFICATION and isinstance(output, torch.Tensor) and output.dim() >= 2:
        return int(output.shape[1])
    return None


def expected_loss(kind: str | None, output: Any, target: Any, loss_fn: Any) -> float | None:
    """Chance-level loss: ln C for C-class cross-entropy / NLL, ln 2 per element for BCE.

    With reduction='sum' the per-example value is multiplied by the number of terms summed.
    """
    if not isinstance(output, torch.Tensor):
        return None
    if kind in CLASSIFICATION:
        c = classes_of(kind, output)
        if c is None or c < 2:
            return None
        per = math.log(c)
        if reduction(loss_fn) == "sum" and isinstance(target, torch.Tensor):
            if target.dtype.is_floating_point:
                terms = target.numel() // c
            else:
                terms = int((target != ignore_index(loss_fn)).sum())
            return per * terms
        return per
    if kind in BINARY:
        per = math.log(2)
        return per * output.numel() if reduction(loss_fn) == "sum" else per
    return None


def validate_target(kind: str | None, output: Any, target: Any, loss_fn: Any) -> None:
    """Raise a clear NbdebugError for targets PyTorch would reject, or worse, assert on in CUDA."""
    if kind is None or not isinstance(output, torch.Tensor) or not isinstance(target, torch.Tensor):
        return
    name = NAMES[kind]
    if kind in CLASSIFICATION:
        if target.dtype.is_floating_point and target.shape == output.shape and kind == "ce":
            return  # class probabilities (soft labels) are allowed by CrossEntropyLoss
        if target.dtype.is_floating_point or target.dtype == torch.bool:
            raise NbdebugError(
                f"{name} needs integer class indices as targets, got {describe(target)} for output "
                f"{describe(output)}: convert the labels with `y.long()`"
            )
        c = output.shape[1] if output.dim() >= 2 else None
        valid = target[target != ignore_index(loss_fn)]
        if c is not None and valid.numel():
            lo, hi = int(valid.min()), int(valid.max())
            if lo < 0 or hi >= c:
                raise NbdebugError(
                    f"{name} targets must lie in [0, {c - 1}] for an output with {c} classes "
                    f"({describe(output)}), but the labels range over [{lo}, {hi}]: the final layer has too "
                    "few outputs, or the labels are not 0-based"
                )
        expect = (output.shape[0], *output.shape[2:]) if output.dim() >= 2 else ()
        if tuple(target.shape) != tuple(expect):
            raise NbdebugError(
                f"{name} expects targets of shape {tuple(expect)} for output {describe(output)}, "
                f"got {describe(target)}"
            )
    if kind in BINARY:
        if tuple(target.shape) != tuple(output.shape):
            raise NbdebugError(
                f"{name} needs a target of the same shape as its input: got input {describe(output)} and "
                f"target {describe(target)}; reshape one of them (e.g. `out.squeeze(1)` or `y.float()."
                "unsqueeze(1)`)"
            )
        if not target.dtype.is_floating_point:
            raise NbdebugError(f"{name} needs float targets, got {describe(target)}: use `y.float()`")
        if kind == "bce" and output.numel():
            lo, hi = float(output.detach().min()), float(output.detach().max())
            if lo < 0 or hi > 1:
                raise NbdebugError(
                    f"BCELoss needs probabilities in [0, 1], but the model outputs values in "
                    f"[{lo:.3g}, {hi:.3g}] (logits): use BCEWithLogitsLoss on the raw outputs"
                )


def call_loss(loss_fn: Callable, output: Any, target: Any) -> torch.Tensor:
    """Call the user's loss and insist on a scalar tensor; errors name the shapes involved."""
    try:
        with warnings.catch_warnings():
            # torch's "Using a target size ... different to the input size" is reported as target-broadcast
            warnings.filterwarnings("ignore", message="Using a target size", category=UserWarning)
            loss = loss_fn(output) if target is None else loss_fn(output, target)
    except NbdebugError:
        raise
    except Exception as e:
        raise NbdebugError(
            f"the loss function {getattr(loss_fn, '__name__', type(loss_fn).__name__)} failed on output "
            f"{describe(output)} and target {describe(target)}: {type(e).__name__}: {e}"
        ) from None
    if not isinstance(loss, torch.Tensor):
        raise NbdebugError(f"the loss function returned {describe(loss)}, expected a scalar tensor")
    if loss.numel() != 1:
        raise NbdebugError(
            f"the loss is not a scalar: got {describe(loss)}; use reduction='mean' or call .mean() on it"
        )
    return loss if loss.dim() == 0 else loss.reshape(())
