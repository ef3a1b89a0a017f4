"""Training checks for the loss-wiring pitfalls: the classification loss's input in the wrong space
(`_core/loss_space.py`, read from the first training and validation call of each loss), gradients clipped
while GradScaler still scales them, and `torch.log(softmax(x))` reaching -inf (`pitfalls.py` collects
both). Each is conclusive on the evidence of one call or one step: raised at once, never withdrawn."""

from __future__ import annotations

from collections.abc import Iterator

from .._core.findings import Finding
from .._core.loss_space import describe
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
                fn = "CrossEntropyLoss" if c.name == "cross_entropy" else "NLLLoss"
                want = "raw logits" if c.name == "cross_entropy" else "log-probabilities (log_softmax)"
                yield _f(
                    "softmax-before-ce",
                    "error",
                    f"{fn} received probabilities (non-negative rows summing to 1, made by "
                    f"{c.grad_fn or 'the model'}) in its {phase} call instead of {want}: gradients are "
                    "squashed and the loss cannot go below ~ln(C)"
                    + (
                        "; NLLLoss of probabilities is -p[target], negative and bounded"
                        if c.name == "nll_loss"
                        else ""
                    ),
                    "remove the final softmax and pass the logits"
                    if c.name == "cross_entropy"
                    else "use log_softmax (nn.LogSoftmax(dim=1)) instead of softmax before NLLLoss",
                    where,
                    step=c.step,
                    **c.space.evidence,
                )
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
            f"call scaler.unscale_(optimizer) after scaler.scale(loss).backward() and before {fn} "
            "(the AMP recipe: unscale, then clip, then scaler.step(optimizer))",
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
