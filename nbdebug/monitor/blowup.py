"""Blow-ups: a loss or gradient norm that jumps by orders of magnitude, the one piece of evidence that is
conclusive on a single step. Healthy training never takes the loss to 100x its untrained level; when
it does, the step, the size of the updates before it and what happened after (the loss came back, the
units died, the loss went NaN) are told as one finding, named by the cause:

- `lr-too-high`: updates above 1e-2 of the weights before the jump, and the loss came back (the network
  often dies on the way: its units stay dead and the loss sits at chance);
- `loss-diverging`: the same, but the loss is still blown up (or NaN) at the latest step;
- `exploding-gradients`: the untrained network already has a loss >= 100x that of a predictor that
  ignores the input (the init blows the activations up through the depth), or the jump came without
  large updates before it (a transient blow-up: an outlier batch, an unstable op).

A missing zero_grad that blows the loss up is `grad-not-zeroed`'s story; `chains.py` adds the blow-up
to that finding instead. Pure functions of `RunData`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from .._core.findings import Finding
from .losscalls import BINARY, CLASSIFICATION
from .rundata import BLOWUP, DEAD_FRAC, GRAD_HUGE, GRAD_JUMP, RATIO_HIGH, RATIO_REF, RunData, _f


@dataclass
class Blowup:
    """A blow-up and its story (see the module docstring)."""

    step: int  # the first step whose loss (or gradient) had blown up
    kind: str  # "init", "loss", "gradient" or "nonfinite"
    ref: float  # the untrained level it is measured against
    value: float  # the loss (or gradient norm) at `step`
    grad: float  # the gradient norm at `step`
    grad_before: float  # the gradient norm at the first step
    ratio: float  # the largest median update/weight ratio sampled before the jump (nan: none sampled)
    ratio_step: int
    still: bool  # still blown up (or non-finite) at the latest step
    recovered_to: float  # mean loss over the last steps, when it came back
    dead: list[tuple[str, float, int]] = field(default_factory=list)  # (layer, dead fraction, since) after it
    nan_step: int | None = None  # the first non-finite step after (or at) the jump

    @property
    def cause(self) -> str:
        if self.kind == "init":
            return "init"
        return "lr" if math.isfinite(self.ratio) and self.ratio > RATIO_HIGH else "unknown"


def _baseline(run: RunData) -> float | None:
    """The loss of a predictor that ignores its input (ln C, ln 2, var(y)) when exactly one loss is seen."""
    values = [c.baseline for c in run.loss_calls if c.baseline]
    return values[0] if len(values) == 1 and values[0] > 0 else None


def _bounded_baseline(run: RunData) -> float | None:
    """The baseline of a mean-reduced classification loss (ln C, ln 2), which an untrained network scores
    within a few times unless its logits explode; a regression's untrained loss has no such bound
    (unscaled targets)."""
    calls = [c for c in run.loss_calls if c.baseline]
    if (
        len(calls) == 1
        and calls[0].name in CLASSIFICATION + BINARY
        and calls[0].reduction == "mean"  # a summed loss grows with the batch and the output size
        and calls[0].baseline > 0
    ):
        return calls[0].baseline
    return None


def _step_ratios(run: RunData, before: int) -> list[tuple[int, float]]:
    out = []
    for step in sorted(run.samples):
        if step >= before:
            break
        rs = [
            s.update_ratio for s in run.samples[step] if math.isfinite(s.update_ratio) and s.update_ratio > 0
        ]
        if rs:
            out.append((step, median(rs)))
    return out


def find_blowup(run: RunData) -> Blowup | None:
    """The first blow-up of the run, or None (see the module docstring for the rule)."""
    steps = list(run.steps)
    if not steps:
        return None
    first = steps[0]
    base = _bounded_baseline(run)
    kind, at = None, None
    # what the loss function returned on the first step (the step's record may hold a GradScaler's scaled loss)
    first_value = next(
        (c.value for c in run.loss_calls if c.step == 1 and math.isfinite(c.value)), first.loss
    )
    if base is not None and math.isfinite(first_value) and first_value >= BLOWUP * base:
        kind, at, ref = "init", first, base
    else:
        ref = first.loss if math.isfinite(first.loss) and first.loss > 0 else None
        grads = [first.grad_norm] if math.isfinite(first.grad_norm) else []
        for r in steps[1:]:
            if ref is not None and math.isfinite(r.loss) and r.loss >= BLOWUP * ref:
                kind, at = "loss", r
                break
            if len(grads) >= 3 and math.isfinite(r.grad_norm):
                m = median(grads[-10:])
                if m > 0 and r.grad_norm >= GRAD_JUMP * m:
                    kind, at = "gradient", r
                    break
            if math.isfinite(r.grad_norm):
                grads.append(r.grad_norm)
        if at is None or ref is None:
            return None
    assert at is not None
    ratios = _step_ratios(run, at.step)
    best = max(ratios, key=lambda t: t[1]) if ratios else (0, math.nan)
    tail = [r.loss for r in steps[-5:]]
    finite_tail = [v for v in tail if math.isfinite(v)]
    level = ref if kind != "init" else (base or ref)
    # still blown up: the median of the (up to 3) latest steps since the jump; until the loss has been seen
    # to come back, it has not
    since = [r.loss if math.isfinite(r.loss) else math.inf for r in steps if r.step >= at.step][-3:]
    still = not math.isfinite(steps[-1].loss) or median(since) >= BLOWUP * level
    nan_step = next((r.step for r in steps if r.step >= at.step and not math.isfinite(r.loss)), None)
    return Blowup(
        step=at.step,
        kind=kind or "loss",
        ref=ref,
        value=first_value if kind == "init" else (at.loss if kind != "gradient" else at.grad_norm),
        grad=at.grad_norm,
        grad_before=first.grad_norm,
        ratio=best[1],
        ratio_step=best[0],
        still=still,
        recovered_to=sum(finite_tail) / len(finite_tail) if finite_tail else math.nan,
        dead=_dead_after(run, at.step),
        nan_step=nan_step,
    )


def _dead_after(run: RunData, step: int) -> list[tuple[str, float, int]]:
    """ReLU layers dead (>= 70%) on the latest sample that were not before `step`: what the blow-up killed."""
    if not run.samples:
        return []
    latest = max(run.samples)
    out = []
    for s in run.samples[latest]:
        if not (math.isfinite(s.dead_frac) and s.dead_frac >= DEAD_FRAC):
            continue
        before = [
            x
            for k in sorted(run.samples)
            if k < step
            for x in run.samples[k]
            if x.layer == s.layer and math.isfinite(x.dead_frac)
        ]
        if before and all(x.dead_frac >= DEAD_FRAC for x in before):
            continue  # dead before the blow-up: not its consequence
        since = latest
        for k in sorted(run.samples, reverse=True):  # the run of dead samples that ends at the latest one
            row = next((x for x in run.samples[k] if x.layer == s.layer), None)
            if row is None or not (math.isfinite(row.dead_frac) and row.dead_frac >= DEAD_FRAC):
                break
            since = k
        out.append((s.layer, s.dead_frac, since))
    return out


def story(b: Blowup, run: RunData) -> str:
    """What happened, in order: the jump, the updates before it, and what followed."""
    if b.kind == "init":
        head = (
            f"the untrained network's loss is {b.value:.3g} at step 1, {b.value / b.ref:.0f}x the {b.ref:.3g} of a "
            f"predictor that ignores the input, with a gradient norm of {b.grad:.3g}: the activations blow up "
            "through the layers from the initialization"
        )
    elif b.kind == "gradient":
        head = f"the gradient norm jumped to {b.grad:.3g} at step {b.step} (first step: {b.grad_before:.3g})"
    else:
        head = (
            f"the loss jumped from {b.ref:.3g} (step 1) to {b.value:.3g} at step {b.step} ({b.value / b.ref:.0f}x), "
            f"the gradient norm from {b.grad_before:.3g} to {b.grad:.3g}"
        )
    parts = [head]
    if b.cause == "lr":
        parts.append(
            f"after updates of {b.ratio:.2g} of the weights per step (median update/weight ratio at step "
            f"{b.ratio_step}, {b.ratio / RATIO_REF:.0f}x the ~1e-3 that trains well)"
        )
    if b.nan_step is not None:
        parts.append(f"the loss became non-finite at step {b.nan_step}")
    if b.dead:
        layers = ", ".join(f"{n} ({f:.0%} from step {k})" for n, f, k in b.dead[:4])
        parts.append(f"then the ReLU units died: {layers} output zero for every example")
    if not b.still and math.isfinite(b.recovered_to):
        base = _baseline(run)
        chance = (
            f", the level of a predictor that ignores its input ({base:.3g})"
            if base and abs(b.recovered_to - base) <= 0.25 * base
            else ""
        )
        parts.append(f"the loss came back to {b.recovered_to:.3g} by step {run.last_step}{chance}")
    elif b.still and b.nan_step is None:
        parts.append(f"and it is still {run.steps[-1].loss:.3g} at step {run.last_step}")
    return "; ".join(parts)


def check_blowup(run: RunData) -> Iterator[Finding]:
    """The blow-up of the run, named by its cause (see the module docstring); silent without one, and
    left to `chains.py` when a gradient leak caused it."""
    b = find_blowup(run)
    if b is None:
        return
    leak = next((r.step for r in run.steps if r.leaked), None)
    if leak is not None and leak <= b.step:
        return  # grad-not-zeroed tells this story (chains.py adds the blow-up to it)
    evidence: dict[str, Any] = {"blowup_step": b.step, "kind": b.kind, "ratio": b.ratio, "still": b.still}
    if b.cause == "init":
        code, hint = (
            "exploding-gradients",
            "initialize the weights for the depth (nn.init.kaiming_normal_ / xavier_normal_, or PyTorch's "
            "default init instead of std=1), normalize the inputs, and clip gradients "
            "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))",
        )
    elif b.cause == "lr":
        code = "loss-diverging" if b.still else "lr-too-high"
        hint = (
            "lower the learning rate (try /10 or /100), or add a warm-up; clip gradients to survive outliers"
        )
    else:
        code = "loss-diverging" if b.still else "exploding-gradients"
        hint = (
            "clip gradients (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)), look for an outlier "
            "batch or an unstable op (exp, log, division) and lower the learning rate"
        )
    if b.grad > GRAD_HUGE:
        evidence["grad_norm"] = b.grad
    yield _f(
        code, "error", story(b, run), hint, "optimizer" if code != "loss-diverging" else "loss", **evidence
    )
