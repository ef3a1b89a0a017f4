"""Training checks that read the loss: what the loss functions received (the loss-input pitfalls and the
initial loss), the loss curve's shape over epochs (diverging, flat, oscillating), and (in
`label_checks.py`) the labels and predictions (class imbalance, predicting the mode)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from .._core.classes import initial_loss_severity
from .._core.findings import Finding
from .label_checks import check_labels
from .pitfall_checks import check_loss_space
from .rundata import ELEMENTWISE, MIN_PERIOD, RunData, _f, _start_loss
from .wiggle import check_wiggle

__all__ = ["check_labels", "check_loss_calls", "check_loss_curve"]


def check_loss_calls(run: RunData) -> Iterator[Finding]:
    """The loss pitfalls of `nbdebug.check`, read from what the loss functions really received (the
    input's space in `pitfall_checks.check_loss_space`)."""
    yield from check_loss_space(run)
    for c in run.loss_calls:
        if (
            c.name == "binary_cross_entropy_with_logits"
            and c.input_min >= 0
            and c.input_max <= 1
            and "Sigmoid" in c.grad_fn
        ):
            yield _f(
                "sigmoid-before-bce-logits",
                "error",
                "BCEWithLogitsLoss received values already squashed by a Sigmoid (all in [0, 1]): the sigmoid is "
                "applied twice and the loss cannot go below ~0.31",
                "drop the model's final Sigmoid (BCEWithLogitsLoss applies it) and apply torch.sigmoid only for predictions",
                c.name,
            )
        if c.name == "binary_cross_entropy" and "Sigmoid" in c.grad_fn:
            yield _f(
                "sigmoid-bceloss",
                "info",
                "Sigmoid followed by BCELoss: correct, but BCEWithLogitsLoss on the logits is the numerically stable form",
                "drop the final Sigmoid and use nn.BCEWithLogitsLoss",
                c.name,
            )
        if c.name in ELEMENTWISE and c.target_shape is not None and c.input_shape != c.target_shape:
            yield _f(
                "target-broadcast",
                "error",
                f"{c.name} got input {c.input_shape} and target {c.target_shape}: they broadcast to a "
                "different shape, so every prediction is compared with every target",
                "make the shapes equal: output.squeeze(-1) or target.unsqueeze(-1)/.view_as(output)",
                c.name,
                input_shape=c.input_shape,
                target_shape=c.target_shape,
            )
        expected = None
        if c.step == 1 and c.reduction == "mean" and not c.weighted:
            if c.name == "cross_entropy" and c.n_classes and c.n_classes > 1:
                expected = math.log(c.n_classes)
            elif c.name == "binary_cross_entropy_with_logits":
                expected = math.log(2)
        severity = initial_loss_severity(c.value, expected) if expected is not None else None
        if severity is not None and math.isfinite(c.value) and c.value > expected:
            yield _f(
                "initial-loss",
                severity,
                f"first loss is {c.value:.3f}, expected about {expected:.3f} "
                f"({f'-ln(1/{c.n_classes})' if c.name == 'cross_entropy' else 'ln 2'}) for an untrained model: "
                "the initial predictions are confidently wrong",
                "scale down the last layer's init (e.g. multiply its weight by 0.01, zero its bias) and check "
                "the input normalization",
                c.name,
                value=c.value,
                expected=expected,
            )


def _period_means(run: RunData) -> list[tuple[float, float, int]]:
    losses = {r.step: r.loss for r in run.steps}
    out = []
    for a, b in run.periods:
        vals = [losses[s] for s in range(a, b + 1) if s in losses and math.isfinite(losses[s])]
        if len(vals) >= MIN_PERIOD:
            m = sum(vals) / len(vals)
            sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
            out.append((m, sd, len(vals)))
    return out


def _falls(p: list[tuple[float, float, int]]) -> bool:
    """The period means fall steadily: the least-squares slope over the periods is negative, over 3
    standard errors from zero (the noise is the periods' own scatter around the line) and worth >= 1% of
    the first period's loss over the run. A slow but real descent (SGD(1e-3) on the quickstart tutorial:
    2.306 -> 2.267 over 21 epochs, every epoch lower) is not a flat loss."""
    n = len(p)
    if n < 4:  # two degrees of freedom at least: three noisy points line up too often
        return False
    xs, ys = range(n), [m for m, _, _ in p]
    mx, my = (n - 1) / 2, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    resid = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys))
    se = math.sqrt(resid / (n - 2) / sxx)
    fell = -slope * (n - 1)  # the fitted descent from the first period to the last
    return slope < 0 and fell >= 0.01 * abs(ys[0]) and (se == 0 or -slope / se > 3)


def check_loss_curve(run: RunData) -> Iterator[Finding]:
    """Loss shape over periods (epochs when >= 3 are seen, else blocks of 25 steps):
    diverging: latest period mean > 3x the lowest so far, and above it by > 10% of the first period;
    not decreasing: after >= 3 periods the last mean is > 95% of the first, unless it is already below
    half the loss of a predictor that ignores the input (ln C for C-class cross-entropy, ln 2 for BCE,
    the targets' variance for MSE): a resumed or converged run is flat without being broken;
    oscillating: see `wiggle.check_wiggle` (a wiggle far beyond what the batch size explains)."""
    p = _period_means(run)
    if len(p) < 2:
        return
    kind = run.period_kind
    first, last = p[0][0], p[-1][0]
    lowest = min(m for m, _, _ in p[:-1])
    if last > 3 * lowest and last - lowest > 0.1 * first:
        yield _f(
            "loss-diverging",
            "error",
            f"the mean loss of the last {kind} is {last:.3g}, {last / lowest:.1f}x the lowest so far ({lowest:.3g})",
            "lower the learning rate (try /10), clip gradients, check for a learning-rate schedule that grows",
            "loss",
            last=last,
            lowest=lowest,
        )
        return
    baselines = [c.baseline for c in run.loss_calls if c.baseline]
    learned = len(baselines) == 1 and last < 0.5 * baselines[0]  # e.g. a resumed run at its noise floor
    if (
        len(p) >= 3
        and sum(n for _, _, n in p) >= 30
        and last > 0.95 * first
        and not learned
        and not _falls(p)
    ):
        yield _f(
            "loss-not-decreasing",
            "warning",
            f"after {len(p)} {kind}s the mean loss is {last:.3g} against {first:.3g} in the first: it is not "
            "going down",
            "overfit a tiny subset first (nbdebug.overfit); check the learning rate (update/weight ratio), that "
            "zero_grad/backward/step are all called, and that the targets match the outputs",
            "loss",
            first=first,
            last=last,
        )
    yield from check_wiggle(run, p, _start_loss(run) or first)
