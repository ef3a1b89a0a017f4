"""Why a finding was withdrawn: the later evidence that contradicts it, in words, read from the run the
diagnosis that no longer found it saw (see `LiveResults._record` for the lifecycle itself)."""

from __future__ import annotations

import math

from .._core.catalogue import CATALOGUE
from .._core.findings import Finding
from .rundata import RunData

# findings about the loss's course: contradicted when the loss then fell (or came back)
LOSS_CODES = (
    "loss-not-decreasing",
    "loss-oscillating",
    "loss-diverging",
    "lr-too-high",
    "lr-too-low",
    "lr-schedule-collapse",
    "exploding-gradients",
)


def _recent_loss(run: RunData, k: int = 20) -> tuple[float, int] | None:
    vals = [r.loss for r in run.steps[-k:] if math.isfinite(r.loss)]
    return (sum(vals) / len(vals), len(vals)) if vals else None


def _latest_ratio(run: RunData) -> float | None:
    if not run.samples:
        return None
    rs = sorted(s.update_ratio for s in run.samples[max(run.samples)] if math.isfinite(s.update_ratio))
    return rs[len(rs) // 2] if rs else None


def withdrawal_reason(f: Finding, run: RunData) -> str:
    """What contradicts `f` now, e.g. "the loss then fell: 2.3 when raised, 1.27 over the last 20 steps
    (step 300)"; a generic sentence naming the rule for codes without a specific one."""
    step = run.last_step
    if "blowup_step" in f.evidence:
        from .blowup import find_blowup

        b = find_blowup(run)
        if b is not None and b.step == f.evidence["blowup_step"]:
            now = "has not come back: loss-diverging" if b.still else "came back"
            return f"the same blow-up (step {b.step}) is told under another code now: the loss {now}"
    if f.code == "exploding-gradients":
        norms = [r.grad_norm for r in run.steps[-5:] if math.isfinite(r.grad_norm)]
        if norms:
            return f"the gradient norm came down to {norms[-1]:.3g} at step {step}"
    if f.code in LOSS_CODES:
        recent = _recent_loss(run)
        was = (
            next(
                (f.evidence[k] for k in ("last", "first") if isinstance(f.evidence.get(k), (int, float))),
                None,
            )
            if f.code.startswith("loss")
            else None
        )
        if recent is not None:
            if was is not None and recent[0] < 0.95 * was:
                return f"the loss then fell: {was:.3g} when raised, {recent[0]:.3g} over the last {recent[1]} steps (step {step})"
            ratio = _latest_ratio(run)
            now = f"; the median update/weight ratio is {ratio:.2g}" if ratio is not None else ""
            return (
                f"at step {step} the rule no longer holds: the loss is {recent[0]:.3g} over the last {recent[1]} "
                f"steps{now}"
            )
    if f.code in ("dead-relu", "saturated-activation") and run.samples:
        latest = max(run.samples)
        row = next((s for s in run.samples[latest] if s.layer == f.where), None)
        if row is not None:
            value = row.dead_frac if f.code == "dead-relu" else row.saturated_frac
            what = "dead" if f.code == "dead-relu" else "saturated"
            if math.isfinite(value):
                return f"{f.where} recovered: {value:.0%} of its units {what} at step {latest}"
    if f.code == "no-grad":
        return f"every trainable parameter has received a gradient by step {step}"
    if f.code == "optimizer-never-steps":
        return f"the optimizer stepped ({len(run.steps)} step(s) by the end)"
    if f.code == "params-not-in-optimizer":
        return f"by step {step} an optimizer holds them, or their values changed (a hand-written update)"
    if f.code == "frozen-by-accident":
        return "the optimizer's parameters are trainable now (requires_grad=True)"
    info = CATALOGUE.get(f.code)
    rule = f" ({info.threshold})" if info is not None else ""
    return f"the evidence no longer meets the rule at step {step}{rule}"
