"""Checks of the training loop's wiring rather than its numbers: nothing the optimizer holds can train
(`frozen-by-accident`), backward passes with no optimizer step (`optimizer-never-steps`), and a schedule
that drove the learning rate to nothing (`lr-schedule-collapse`). Each is a degenerate loop that
otherwise shows only as a flat loss, or as nothing at all. Pure functions of `RunData`."""

from __future__ import annotations

import math
from collections.abc import Iterator

from .._core.findings import Finding
from .rundata import COLLAPSE_SHARE, COLLAPSE_STEPS, LR_COLLAPSE, NEVER_STEPS, RunData, _f


def check_frozen(run: RunData) -> Iterator[Finding]:
    """frozen-by-accident: every parameter the optimizer holds has requires_grad=False, or it holds none
    (empty parameter groups): error from the first step, nothing can train. One whole group frozen while
    another trains: info (a backbone frozen for now, to be unfrozen later, is a common schedule). A
    backbone frozen and left out of the optimizer is silent: the optimizer then holds only the head."""
    groups = run.groups
    if not groups or not (run.steps or run.final or run.train_backwards):
        return
    held = sum(g["params"] for g in groups)
    frozen = sum(g["frozen"] for g in groups)
    if held == 0:
        yield _f(
            "frozen-by-accident",
            "error",
            f"the optimizer holds no parameter: its {len(groups)} parameter group(s) are empty, so "
            "optimizer.step() updates nothing",
            "build the optimizer from the parameters you want to train, e.g. torch.optim.Adam(model.parameters()); "
            "check the filter that selected them (a name that matched nothing)",
            "optimizer",
            groups=len(groups),
        )
        return
    if frozen == held:
        names = [n for g in groups for n in g["frozen_names"]]
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        yield _f(
            "frozen-by-accident",
            "error",
            f"all {held} parameters the optimizer holds have requires_grad=False ({shown}): nothing trains; "
            "a loss made to require grad (loss.requires_grad = True) only hides the error autograd raised",
            "unfreeze what should train (p.requires_grad_(True)) before building the optimizer, e.g. the head: "
            "for p in model.head.parameters(): p.requires_grad_(True)",
            "optimizer",
            params=held,
            names=names[:50],
        )
        return
    for g in groups:
        if g["params"] and g["frozen"] == g["params"]:
            shown = ", ".join(g["frozen_names"][:3]) + (", ..." if g["frozen"] > 3 else "")
            yield _f(
                "frozen-by-accident",
                "info",
                f"parameter group {g['index']} of the optimizer (lr {g['lr']:g}, {g['params']} parameters: "
                f"{shown}) is entirely frozen (requires_grad=False): it will not train until you unfreeze it",
                "if it is frozen for now on purpose, nothing to do; else unfreeze it (p.requires_grad_(True))",
                f"param group {g['index']}",
                group=g["index"],
            )
        elif not g["params"]:
            yield _f(
                "frozen-by-accident",
                "info",
                f"parameter group {g['index']} of the optimizer (lr {g['lr']:g}) is empty: the parameters "
                "meant for it are not trained with its settings",
                "check the filter that built the group (a name that matched nothing)",
                f"param group {g['index']}",
                group=g["index"],
            )


def check_never_steps(run: RunData) -> Iterator[Finding]:
    """optimizer-never-steps: with an optimizer, >= NEVER_STEPS backward passes in train mode (or any, at
    the end of the run) and not one optimizer.step(). Backward passes in eval mode without a step are
    analysis (saliency, adversarial examples) and stay silent. Forward passes in train mode with neither
    a backward pass nor a step: info at the end (nothing trained; an evaluation loop belongs in eval mode
    under torch.no_grad())."""
    if run.steps:
        return
    if run.optimizer_given and (
        run.train_backwards >= NEVER_STEPS or (run.final and run.train_backwards > 0)
    ):
        yield _f(
            "optimizer-never-steps",
            "warning",
            f"{run.train_backwards} backward pass(es) in train mode and not one optimizer.step(): the "
            "gradients are computed and thrown away, the weights never change",
            "call optimizer.step() after loss.backward() (and optimizer.zero_grad() before the next backward)",
            "optimizer",
            backwards=run.train_backwards,
        )
    elif run.final and run.train_backwards == 0 and run.analysis_backwards == 0 and run.train_forwards > 0:
        yield _f(
            "optimizer-never-steps",
            "info",
            f"{run.train_forwards} forward pass(es) with gradients on in train mode, but no backward pass and no "
            "optimizer step: nothing was trained",
            "call loss.backward() and optimizer.step() in the loop; for evaluation, use model.eval() and "
            "torch.no_grad()",
            "loop",
            forwards=run.train_forwards,
        )


def check_schedule(run: RunData) -> Iterator[Finding]:
    """lr-schedule-collapse: the learning rate below LR_COLLAPSE (1/1000) of its maximum on the latest
    step and on >= COLLAPSE_STEPS steps making >= COLLAPSE_SHARE of the run, while the loss over those
    steps does not fall (the second half's mean >= 95% of the first half's). Cosine and one-cycle
    schedules pass that level only in their last ~2% of steps. The schedulers driving the optimizer are
    named with how often they were stepped against the optimizer steps and epochs."""
    lrs = [(r.step, r.lr, r.loss) for r in run.steps if math.isfinite(r.lr)]
    if not lrs:
        return
    top = max(lr for _, lr, _ in lrs)
    if not top > 0 or lrs[-1][1] >= LR_COLLAPSE * top:
        return
    low = [(s, lr, loss) for s, lr, loss in lrs if lr < LR_COLLAPSE * top]
    if len(low) < COLLAPSE_STEPS or len(low) < COLLAPSE_SHARE * len(lrs):
        return
    losses = [loss for _, _, loss in low if math.isfinite(loss)]
    half = len(losses) // 2
    if half >= 2:
        first, second = sum(losses[:half]) / half, sum(losses[half:]) / (len(losses) - half)
        if second < 0.95 * first:
            return
    since = low[0][0]
    n = len(run.steps)
    who = ""
    if run.schedulers:
        s = run.schedulers[0]
        per = ""
        if run.period_kind == "epoch" and run.periods:
            per = f" over {len(run.periods)} epochs"
        who = f"{s['label']} was stepped {s['steps']} times in {n} optimizer steps{per}: "
    yield _f(
        "lr-schedule-collapse",
        "warning",
        f"{who}the learning rate fell from {top:.3g} to {lrs[-1][1]:.3g}; it has been below 1/1000 of its "
        f"maximum since step {since} ({len(low)} of {n} steps) and the loss stays at "
        f"{sum(losses[-min(len(losses), 20) :]) / max(min(len(losses), 20), 1):.3g}",
        "step an epoch-based scheduler (StepLR, MultiStepLR, ExponentialLR) once per epoch, after the loop "
        "over batches, not once per batch; or set its step_size/milestones in batches",
        "optimizer",
        top=top,
        last=lrs[-1][1],
        since=since,
        scheduler=run.schedulers[0]["label"] if run.schedulers else None,
    )
