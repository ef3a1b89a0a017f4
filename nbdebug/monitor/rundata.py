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
PERSIST = 3  # samples a statistical (not conclusive) condition must hold for in a row
DEAD_FRAC = 0.7
MIN_ROWS = 8  # examples (x positions) a dead-unit verdict needs: one example of a batch-1 RNN proves nothing
SATURATED_FRAC = 0.5
SATURATED_FAR = 0.9  # saturated on one sample this far past the threshold: conclusive
GRAD_HUGE = 1e3
GRAD_GROWTH = 100.0
BLOWUP = 100.0  # a loss this many times its untrained level: a blow-up, conclusive (healthy runs never)
GRAD_JUMP = 1000.0  # a gradient norm this many times the median of the steps before it: a blow-up
LR_COLLAPSE = 1e-3  # a learning rate below this fraction of its maximum ...
COLLAPSE_SHARE = 0.2  # ... for this share of the run ...
COLLAPSE_STEPS = 10  # ... and at least this many steps: a collapsed schedule
NEVER_STEPS = 10  # backward passes in train mode without an optimizer step before it is reported live
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
    internal_errors: list[str] = field(default_factory=list)  # where a failing check records itself
    groups: list[dict[str, Any]] = field(
        default_factory=list
    )  # the optimizer's param groups (see group_info)
    optimizer_given: bool = False  # an optimizer was given or adopted (its steps are the run's steps)
    train_forwards: int = 0  # forward passes with gradients on, model in train mode
    train_backwards: int = 0  # backward passes with the model in train mode
    analysis_backwards: int = 0  # backward passes no step followed (gradients for analysis)
    schedulers: list[dict[str, Any]] = field(default_factory=list)  # LR schedulers of the optimizer
    sample_steps: list[int] = field(default_factory=list)  # sampled steps, in order
    task: Any = None  # TaskEvidence (monitor/task.py): classes, fixes in place, per-example loss spread
    wiring: Any = (
        None  # WiringEvidence (monitor/wiring_checks.py): what the loss reaches, what optimizers hold
    )
    eval_loss_calls: list[LossCall] = field(default_factory=list)  # first validation call per loss
    clip_scaled: dict[str, Any] | None = None  # gradients clipped while GradScaler-scaled (pitfalls.py)
    log_of_softmax: dict[str, Any] | None = None  # the first exact 0 a log(softmax(...)) took the log of
    layout: Any = None  # LayoutEvidence (monitor/layout.py): RNN layout, BatchNorm batches, label order, eval

    @classmethod
    def from_monitor(cls, monitor: Any, loss_calls: list[LossCall], final: bool, **periods: Any) -> RunData:
        """What one `StepMonitor` recorded; `periods` adds epochs and class counts where the caller has them."""
        opt = monitor.stepping
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
            internal_errors=monitor.internal_errors,
            groups=group_info(opt, monitor.model) if opt is not None else [],
            optimizer_given=opt is not None,
            train_forwards=monitor.train_forwards,
            train_backwards=monitor.train_backwards,
            analysis_backwards=monitor.analysis_backwards,
            schedulers=monitor.schedulers(),
            sample_steps=sorted(monitor.samples),
        )

    @property
    def last_step(self) -> int:
        return self.steps[-1].step if self.steps else 0


def group_info(optimizer: Any, model: Any) -> list[dict[str, Any]]:
    """Per parameter group of `optimizer`: how many parameters it holds, how many are frozen
    (requires_grad=False) and their names in `model`, and its learning rate. Read fresh at each diagnosis
    (a user may unfreeze later)."""
    names: dict[Any, str] | None = None  # walked only when a group holds a frozen parameter
    out = []
    for i, g in enumerate(optimizer.param_groups):
        params = list(g["params"])
        frozen = [p for p in params if not p.requires_grad]
        if frozen and names is None:
            names = {p: n for n, p in model.named_parameters()}
        out.append(
            {
                "index": i,
                "params": len(params),
                "frozen": len(frozen),
                "frozen_names": [names.get(p, "?") for p in frozen[:50]] if names is not None else [],
                "lr": g.get("lr", math.nan),
            }
        )
    return out


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
