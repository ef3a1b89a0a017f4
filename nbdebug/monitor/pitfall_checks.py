"""Training checks for the loss-wiring pitfalls: the classification loss's input in the wrong space
(`_core/loss_space.py`, read from the first training and validation call of each loss), gradients clipped
while GradScaler still scales them, and `torch.log(softmax(x))` reaching -inf (`pitfalls.py` collects
both). Each is conclusive on the evidence of one call or one step: raised at once, never withdrawn."""

from __future__ import annotations

import math
from collections.abc import Iterator

from .._core.findings import Finding
from .._core.loss_space import describe
from .losscalls import LossCall
from .rundata import RunData, _f


def check_loss_space(run: RunData) -> Iterator[Finding]:
    """softmax-before-ce, nll-without-log-softmax, softmax-wrong-dim: once per code and loss."""
    told: set[tuple[str, str]] = set()
    for phase, calls in (("training", run.loss_calls), ("validation", run.eval_loss_calls)):
        for c in calls:
            if c.space is None or (c.space.code, c.name) in told:
                continue
            told.add((c.space.code, c.name))
            where = c.name if phase == "training" else f"{c.name} (validation)"
            if c.space.code == "softmax-before-ce":
                yield _probabilities(c, phase, where)
                continue
            message, hint = describe(c.space, c.name)
            yield _f(
                c.space.code,
                "error",
                f"{message} ({phase}, step {c.step})",
                hint,
                where,
                step=c.step,
                **c.space.evidence,
            )


def _probabilities(c: LossCall, phase: str, where: str) -> Finding:
    """softmax-before-ce, told with what it costs: CrossEntropyLoss of probabilities is bounded below by
    ln(1 + (C-1)/e) per example (0.74 for 4 classes, the floor of ariecattan/SciCo#2), NLLLoss of them is
    -p[target], in [-1, 0]."""
    made = f"made by {c.grad_fn}" if c.grad_fn else "from the model"
    if c.name == "cross_entropy":
        floor = math.log(1 + ((c.n_classes or 2) - 1) / math.e)
        cost = (
            f"it applies a second softmax, so the loss cannot go below ln(1 + (C-1)/e) = {floor:.3g} and "
            "the gradients are squashed"
        )
        fix = "remove the softmax before CrossEntropyLoss and pass the logits (apply softmax only to read probabilities)"
    else:
        floor = -1.0
        cost = "NLLLoss of probabilities is -p[target], stuck in [-1, 0] and going negative, not a log-likelihood"
        fix = "use log_softmax (nn.LogSoftmax(dim=1)) instead of softmax before NLLLoss, or CrossEntropyLoss on the logits"
    fn = "CrossEntropyLoss" if c.name == "cross_entropy" else "NLLLoss"
    want = "raw logits" if c.name == "cross_entropy" else "log-probabilities"
    return _f(
        "softmax-before-ce",
        "error",
        f"{fn} received probabilities instead of {want} in its {phase} call (step {c.step}): non-negative rows "
        f"summing to 1, {made}; {cost}",
        fix,
        where,
        step=c.step,
        loss_floor=floor,
        **c.space.evidence,
    )


def check_amp_pitfalls(run: RunData) -> Iterator[Finding]:
    """clip-scaled-grads and log-softmax-unstable from what `PitfallTracker` saw."""
    clip = run.clip_scaled
    if clip is not None:
        fn = "clip_grad_norm_" if clip["kind"] == "norm" else "clip_grad_value_"
        what = "gradient norm" if clip["kind"] == "norm" else "largest |gradient|"
        yield _f(
            "clip-scaled-grads",
            "error",
            f"{fn}(..., {clip['limit']:g}) ran on gradients still multiplied by GradScaler's scale "
            f"({clip['scale']:g}) at step {clip['step']} ({clip['count']} time(s) so far): the true {what} "
            f"{clip['before']:.3g} was cut to {clip['after']:.3g}, so every update is about "
            f"{clip['before'] / max(clip['after'], 1e-30):.3g}x too small",
            f"call {clip['scaler_name']}.unscale_({clip['optimizer_name']}) after "
            f"{clip['scaler_name']}.scale(loss).backward() and before {fn} (the AMP recipe: unscale, then clip, "
            f"then {clip['scaler_name']}.step({clip['optimizer_name']}))",
            fn,
            **clip,
        )
    z = run.log_of_softmax
    if z is not None:
        yield _f(
            "log-softmax-unstable",
            "error",
            f"torch.log(softmax(x)) in the loss: at step {z['step']} {z['zeros']} of {z['size']} softmax "
            "probabilities underflowed to exactly 0, so the log is -inf there and the gradient NaN",
            "use F.log_softmax(x, dim=...) (or nn.LogSoftmax) instead of log(softmax(x)); with NLLLoss, or "
            "CrossEntropyLoss on the logits",
            "loss",
            **z,
        )
