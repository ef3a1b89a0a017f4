"""The learning-rate checks: the update/weight ratio each optimizer really applied (CS231n's ~1e-3
reference), read with the loss it produced: too high (the loss stalls far above convergence, or nothing is
learned at all after huge updates), too low (the weights barely move while the loss is far from
converged). A blow-up after large updates is `blowup.py`'s, a collapsed schedule `loop_checks.py`'s. Pure
functions of `RunData`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import median

from .._core.findings import Finding
from .rundata import (
    LOSS_WINDOW,
    PERSIST,
    RATIO_HIGH,
    RATIO_LOW,
    RunData,
    _f,
    _start_loss,
)


def _ratio_series(run: RunData) -> list[tuple[int, float]]:
    out = []
    for step in sorted(run.samples):
        rs = [
            s.update_ratio for s in run.samples[step] if math.isfinite(s.update_ratio) and s.update_ratio > 0
        ]
        if rs and step > 1:  # the first step of a momentum/Adam optimizer is not representative
            out.append((step, median(rs)))
    return out


def _loss_stalled(run: RunData, window: int) -> bool | None:
    """Whether the loss stopped falling while still far from converged: the mean of the last `window`
    steps is >= 95% of the `window` steps before, and above 30% of the start level (a converged run
    plateaus too, far lower). None when there is not enough history. Windows of >= 30 steps average
    out minibatch noise."""
    losses = [r.loss for r in run.steps if math.isfinite(r.loss)]
    start = _start_loss(run)
    if len(losses) < 2 * window or not start:
        return None
    recent = sum(losses[-window:]) / window
    earlier = sum(losses[-2 * window : -window]) / window
    return recent >= 0.95 * earlier and recent > 0.3 * start


def _not_converged(run: RunData, window: int) -> bool:
    """The mean loss of the last `window` steps is above 30% of the start level: a run that converged
    has small gradients and so small updates, which is no learning rate too low."""
    losses = [r.loss for r in run.steps[-window:] if math.isfinite(r.loss)]
    start = _start_loss(run)
    return bool(losses) and start is not None and sum(losses) / len(losses) > 0.3 * start


def _learned_nothing(run: RunData, since: int) -> float | None:
    """The mean loss since step `since`, when it stayed at or above 90% of what a predictor that ignores
    its input scores (ln C for C classes, ln 2 for BCE) over >= LOSS_WINDOW steps; None otherwise."""
    calls = [c for c in run.loss_calls if c.baseline and c.name != "mse_loss"]
    losses = [r.loss for r in run.steps if r.step >= since and math.isfinite(r.loss)]
    if len(calls) != 1 or len(losses) < LOSS_WINDOW:
        return None
    mean = sum(losses[-LOSS_WINDOW:]) / LOSS_WINDOW
    return mean if mean >= 0.9 * calls[0].baseline else None


def check_learning_rate(run: RunData) -> Iterator[Finding]:
    """Median over layers of ||update|| / ||weight|| (the change the optimizer actually made, so SGD,
    momentum and Adam are judged alike) on PERSIST samples in a row:
    lr-too-high: the last ones all above 1e-2 *and* the loss stalled far above convergence
    (`_loss_stalled`); or any run of them all above 1e-1 (100x the reference) after which the loss never
    left the level of a predictor that ignores the input (`_learned_nothing`, LOSS_WINDOW steps). The
    ratio alone is a rough heuristic (CS231n): small nets trained well by Adam(1e-3) or SGD(0.05, momentum
    0.9) run at 1-4e-2 for their first epochs, Adam(1e-2) at ~0.1 on its first steps (measured on digits),
    so a high ratio with a falling loss is not a bug.
    lr-too-low: the last ones all below 1e-5 while the loss is far from converged (above 30% of its start)."""
    series = _ratio_series(run)
    if len(series) < PERSIST:
        return
    last = series[-PERSIST:]
    values = [v for _, v in last]
    if all(v > RATIO_HIGH for v in values) and _loss_stalled(run, LOSS_WINDOW):
        yield _f(
            "lr-too-high",
            "warning",
            f"update/weight ratio is {median(values):.2g} (median over layers, last {PERSIST} samples up to step "
            f"{last[-1][0]}), over 10x the ~1e-3 reference, and the loss stopped falling well above convergence; largest: "
            f"{_last_layer_ratios(run, last[-1][0])}",
            "lower the learning rate (try /10), or add a warm-up / scheduler",
            "optimizer",
            ratio=median(values),
        )
        return
    if all(v < RATIO_LOW for v in values) and _not_converged(run, LOSS_WINDOW):
        yield _f(
            "lr-too-low",
            "warning",
            f"update/weight ratio is {median(values):.2g} (median over layers, last {PERSIST} samples up to step "
            f"{last[-1][0]}), 100x under the ~1e-3 that trains well: the weights barely move",
            "raise the learning rate (try x10), or check that a scheduler did not decay it to nothing",
            "optimizer",
            ratio=median(values),
        )
        return
    for i in range(len(series) - PERSIST + 1):
        window = series[i : i + PERSIST]
        if all(v > 10 * RATIO_HIGH for _, v in window):
            stuck = _learned_nothing(run, window[0][0])
            if stuck is not None:
                ratio = median(v for _, v in window)
                yield _f(
                    "lr-too-high",
                    "warning",
                    f"updates of {ratio:.2g} of the weights per step at steps {window[0][0]}-{window[-1][0]} (median "
                    f"update/weight ratio, {ratio / 1e-3:.0f}x the ~1e-3 reference), and the loss never left the "
                    f"level of a predictor that ignores the input: {stuck:.3g} over the last {LOSS_WINDOW} steps",
                    "lower the learning rate (try /10 or /100), or add a warm-up",
                    "optimizer",
                    ratio=ratio,
                    first_step=window[0][0],
                )
            return


def _last_layer_ratios(run: RunData, step: int) -> str:
    rs = sorted(
        ((s.update_ratio, s.layer) for s in run.samples[step] if math.isfinite(s.update_ratio)), reverse=True
    )
    return ", ".join(f"{n} {r:.2g}" for r, n in rs[:3])
