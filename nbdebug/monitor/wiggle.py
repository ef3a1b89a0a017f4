"""`loss-oscillating`: a loss that wiggles far more than the batch size explains.

Each step's loss is the mean over a freshly sampled batch, so it wiggles even when training is healthy:
by the spread of the per-example losses divided by sqrt(batch size) (the standard error of a mean). A
char-RNN trained one example at a time, small batches, fresh random batches of heavy-tailed data all
wiggle a lot, and all of it is sampling. A learning rate too high makes the loss swing from one step to
the next by much more than that, even on large batches (CS231n: "the wiggle relates to the batch size;
a large wiggle with a large batch means the learning rate is too high").

So the monitor keeps the per-example losses of the training loss calls (recomputed with
`reduction='none'` from the call's own input and target, `task.py`), and the check compares the
step-to-step wiggle of the loss within the last period with what sampling predicts from them:

    wiggle          = std of the differences between consecutive step losses / sqrt(2)
    expected / mean = (per-example std within a batch / per-example mean) / sqrt(examples per step)

The wiggle is the std of the step losses for independent batches, but a trend within the period (the
loss falling through an epoch, or recovering from a spike) does not count as wiggle. The check warns
only when wiggle / mean is above `WIGGLE_FLOOR` (0.3: visible on the curve) *and* more than
`WIGGLE_FACTOR` (2) times the expected one (four times the variance sampling explains), while the
period's mean did not fall (>= 95% of the previous period's). One example per
step: each step's loss is one example's, so its spread is all sampling. Without per-example losses (a
hand-written loss), the per-example std is taken equal to the mean (`PRIOR_SPREAD`), as for exponentially
distributed losses, and a loss already below 30% of its start level is left alone (a converged loss
wiggles relative to a tiny mean); with them, the comparison itself tells the two apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import median

from .._core.findings import Finding
from .rundata import RunData, _f

WIGGLE_FLOOR = 0.3  # catalogue loss-oscillating: step-to-step wiggle / mean above this ...
WIGGLE_FACTOR = 2.0  # ... and above this multiple of what minibatch sampling explains
PRIOR_SPREAD = 1.0  # per-example std / mean assumed when the loss gives no per-example values


def expected_wiggle(run: RunData) -> tuple[float, str, bool]:
    """The std / mean of the step losses that sampling a new batch each step explains, how it was
    estimated (for the message), and whether from measured per-example losses."""
    a, b = run.periods[-1]
    steps = [r for r in run.steps if a <= r.step <= b]
    model_batch = median([r.batch_size * max(r.backwards, 1) for r in steps if r.batch_size] or [0])
    spread = run.task.spread if run.task is not None else None
    measured = spread is not None and math.isfinite(spread.std) and spread.mean > 0
    if measured:
        examples = spread.rows
        ratio, how = spread.std / spread.mean, "per-example losses"
    else:
        examples = int(model_batch)
        ratio, how = PRIOR_SPREAD, "no per-example losses: per-example std taken as the mean"
    if examples <= 1:
        return math.inf, "one example per step: every step's loss is one example's", measured
    return (
        ratio / math.sqrt(examples),
        f"{how} spread {ratio:.2f} x mean within a batch / sqrt({examples} examples per step)",
        measured,
    )


def step_wiggle(losses: list[float]) -> float:
    """The std of consecutive differences over sqrt(2): the std of independent values, blind to a trend."""
    diffs = [b - a for a, b in zip(losses, losses[1:])]
    return math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs))) if diffs else math.nan


def check_wiggle(run: RunData, p: list[tuple[float, float, int]], start: float) -> Iterator[Finding]:
    """The last period's wiggle / mean above 0.3 and above twice what sampling explains, while its mean did
    not fall (see the module docstring). `p`: (mean, std, steps) of the periods; `start`: the first steps'
    mean."""
    m, _, n = p[-1]
    prev = p[-2][0]
    a, b = run.periods[-1]
    sd = step_wiggle([r.loss for r in run.steps if a <= r.step <= b and math.isfinite(r.loss)])
    if not (m > 0 and sd / m > WIGGLE_FLOOR and m >= 0.95 * prev):
        return
    expected, how, measured = expected_wiggle(run)
    if sd / m <= WIGGLE_FACTOR * expected or (not measured and m <= 0.3 * start):
        return
    kind = run.period_kind
    yield _f(
        "loss-oscillating",
        "warning",
        f"within the last {kind} the loss wiggles from step to step by {sd / m:.2f} of its mean (std {sd:.3g}, "
        f"mean {m:.3g}, {n} steps), {sd / m / expected:.1f}x what sampling a new batch each step explains "
        f"({expected:.2f}: {how}), and its mean did not fall (previous {prev:.3g})",
        "lower the learning rate (try /3 to /10): the steps overshoot; a larger batch only shrinks the part "
        "of the wiggle that sampling explains. If the batches are not random draws (data sorted by class or "
        "source and not shuffled), consecutive batches differ by more than sampling too: shuffle",
        "loss",
        wiggle=sd / m,
        expected=expected,
    )
