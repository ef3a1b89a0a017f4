"""What the training checks read: `RunData`, the summaries a `StepMonitor` collected (never tensors), and
the thresholds the checks share (each documented in the catalogue with its source)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.findings import Finding
from .losscalls import LossCall

RATIO_REF = 1e-3
RATIO_HIGH = 1e-2  # catalogue lr-too-high
RATIO_LOW = 1e-5  # catalogue lr-too-low
PERSIST = 3  # samples a statistical condition must hold for in a row
DEAD_FRAC = 0.7
SATURATED_FRAC = 0.5
GRAD_HUGE = 1e3
GRAD_GROWTH = 100.0
VANISH_ABS = 1e-7
VANISH_REL = 1e-4
LOSS_WINDOW = 30  # steps compared when asking whether the loss still falls
MIN_PERIOD = 5  # steps an epoch needs to count for the loss-curve checks
BLOCK = 25  # steps per pseudo-epoch when the loop has no epochs we can see
ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")


@dataclass
class RunData:
    """Everything the checks read; `Watch` and `GanWatch` fill it from their StepMonitors."""

    steps: Sequence[Any]  # StepRecord
    samples: dict[int, list[Any]]  # step -> [LayerSample]
    layer_order: list[str]
    input_stats: list[tuple[int, float, float]]
    nonfinite_events: list[dict[str, Any]]
    leaked_params: dict[str, int]
    never_grad: set[str]
    n_params: int
    loss_calls: list[LossCall]
    periods: list[tuple[int, int]] = field(default_factory=list)  # (first, last step) of complete periods
    period_kind: str = "block"  # "epoch" or "block"
    target_counts: list[int] | None = None
    pred_counts_last: list[int] | None = None  # predictions of the last complete period
    label_counts_last: list[int] | None = None
    final: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    task: Any = None  # TaskEvidence (monitor/task.py): classes, fixes in place, per-example loss spread

    @classmethod
    def from_monitor(cls, monitor: Any, loss_calls: list[LossCall], final: bool, **periods: Any) -> RunData:
        """What one `StepMonitor` recorded; `periods` adds epochs and class counts where the caller has them."""
        return cls(
            steps=monitor.steps,
            samples=monitor.samples,
            layer_order=monitor.layer_order,
            input_stats=monitor.input_stats,
            nonfinite_events=monitor.nonfinite_events,
            leaked_params=monitor.leaked_params,
            never_grad=monitor.never_grad,
            n_params=len(monitor.params),
            loss_calls=loss_calls,
            final=final,
            **periods,
        )


def _f(
    code: str, severity: str, message: str, hint: str, where: str | None = None, **evidence: Any
) -> Finding:
    return Finding(code, severity, message, hint, where, evidence)  # type: ignore[arg-type]


def _losses(run: RunData) -> list[float]:
    return [r.loss for r in run.steps]


def _start_loss(run: RunData) -> float | None:
    """Mean loss of the first 5 steps: the untrained level that 'converged' is measured against."""
    first = [r.loss for r in run.steps[:5] if math.isfinite(r.loss)]
    return sum(first) / len(first) if first else None
