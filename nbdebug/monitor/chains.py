"""Causal chains told as one finding. A learning rate too high blows the loss up, the blow-up kills the
ReLUs, the dead network's loss sits flat: three checks see three symptoms, the user needs the cause. Here
the findings of one diagnosis are regrouped: a finding that is a consequence of another is folded into
it (its code listed in the head's `evidence["explains"]` and named in its message) instead of being
reported on its own. Pure function of the run and its findings."""

from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Any

from .._core.findings import Finding
from .rundata import BLOWUP, RATIO_HIGH, RATIO_REF, RunData, _f

# what a head finding explains when the two appear in one diagnosis (besides the per-case rules below)
_EXPLAINS: dict[str, tuple[str, ...]] = {
    # a loss given the wrong input, a log of an underflowed softmax, a clip of scaled gradients: causes
    "log-softmax-unstable": (
        "nonfinite",
        "loss-diverging",
        "lr-too-low",
        "loss-not-decreasing",
        "predicts-mode",
    ),
    "nll-without-log-softmax": ("loss-diverging", "exploding-gradients", "predicts-mode", "initial-loss"),
    "softmax-wrong-dim": ("loss-not-decreasing", "initial-loss"),
    "softmax-before-ce": ("loss-diverging", "loss-not-decreasing", "initial-loss"),
    "clip-scaled-grads": ("lr-too-low", "loss-not-decreasing", "predicts-mode", "loss-oscillating"),
    "lr-schedule-collapse": ("lr-too-low", "loss-not-decreasing", "loss-oscillating"),
    "frozen-by-accident": ("loss-not-decreasing", "no-grad", "lr-too-low", "loss-oscillating"),
    "optimizer-never-steps": ("loss-not-decreasing", "no-grad", "lr-too-low", "loss-oscillating"),
    # the optimizer steps tensors the model no longer uses: they never get a gradient, the model never learns
    "optimizer-stale-params": (
        "loss-not-decreasing",
        "no-grad",
        "lr-too-low",
        "loss-oscillating",
        "predicts-mode",
    ),
    "unregistered-submodule": ("loss-not-decreasing", "lr-too-low"),
    "params-not-in-optimizer": ("loss-not-decreasing", "lr-too-low"),
    "dead-relu": ("loss-not-decreasing", "lr-too-low", "predicts-mode"),
    "saturated-activation": ("loss-not-decreasing", "lr-too-low"),
    "vanishing-gradients": ("lr-too-low",),
    "nonfinite": ("lr-too-low", "loss-not-decreasing", "loss-oscillating", "predicts-mode"),
    # a class-ordered stream: the loss jumps at each change of class and a block of steps sees few classes
    # (predicts-mode, the model favouring the last class, is still told on its own: corpus cases expect it)
    "unshuffled-data": ("loss-oscillating", "loss-not-decreasing", "class-imbalance"),
    "rnn-batch-first-mismatch": ("loss-not-decreasing", "lr-too-low", "predicts-mode"),
}
# what a blow-up explains: everything that follows a loss 100x too high
_AFTER_BLOWUP = (
    "nonfinite",
    "dead-relu",
    "vanishing-gradients",
    "exploding-gradients",
    "loss-diverging",
    "loss-not-decreasing",
    "loss-oscillating",
    "lr-too-high",
    "lr-too-low",
    "saturated-activation",
    "predicts-mode",  # a dead or NaN network outputs one class
)


def _fold(head: Finding, folded: list[Finding]) -> Finding:
    if not folded:
        return head
    seen: list[str] = []
    for f in folded:
        if f.code != head.code and f.code not in seen:
            seen.append(f.code)
    if not seen:
        return head
    explains = list(head.evidence.get("explains", [])) + [
        c for c in seen if c not in head.evidence.get("explains", [])
    ]
    return dataclasses.replace(
        head,
        message=f"{head.message} (this also explains: {', '.join(seen)})",
        evidence={**head.evidence, "explains": explains},
    )


def _first_layer_before(run: RunData, f: Finding, layer: str | None) -> bool:
    """Whether finding `f` (vanishing-gradients) names a layer that comes before `layer` in forward order."""
    order = {n: i for i, n in enumerate(run.layer_order)}
    return layer in order and order.get(f.where or "", -1) < order[layer]


def explain(run: RunData, findings: list[Finding]) -> list[Finding]:
    """Fold consequences into their cause (see the module docstring); the order of the rest is kept."""
    out = list(findings)
    heads = [f for f in out if "blowup_step" in f.evidence]
    if not heads:  # a blow-up tells the dead units itself
        out = _lr_killed_units(run, out)
    if heads:
        head = heads[0]
        step = head.evidence["blowup_step"]
        cause = head.evidence.get("kind")
        # updates too large before the jump: units that died or saturated on the way are the same story
        lr_cause = head.evidence.get("ratio", 0) > RATIO_HIGH
        gone = [
            f
            for f in out
            if f is not head
            and (f.code in _AFTER_BLOWUP or (f.code == "initial-loss" and cause == "init"))
            and (
                _after(f, step) or (lr_cause and (f.code == "lr-too-high" or f.evidence.get("alive_before")))
            )
        ]
        out = [_fold(head, gone) if f is head else f for f in out if f not in gone]
    leak = next((f for f in out if f.code == "grad-not-zeroed"), None)
    if leak is not None:
        from .blowup import find_blowup, story

        b = find_blowup(run)
        if b is not None and leak.evidence.get("first_step", 1) <= b.step:
            gone = [f for f in out if f.code in _AFTER_BLOWUP and _after(f, b.step)]
            told = dataclasses.replace(leak, message=f"{leak.message}; then {story(b, run)}")
            out = [_fold(told, gone) if f is leak else f for f in out if f not in gone]
    for code, explained in _EXPLAINS.items():
        head = next((f for f in out if f.code == code), None)
        if head is None:
            continue
        gone = [f for f in out if f.code in explained and f is not head]
        if code in ("dead-relu", "saturated-activation"):
            gone += [
                f for f in out if f.code == "vanishing-gradients" and _first_layer_before(run, f, head.where)
            ]
        if gone:
            out = [_fold(head, gone) if f is head else f for f in out if f not in gone]
    return out


def _after(f: Finding, step: int) -> bool:
    """Whether finding `f` can be a consequence of something at `step`: its own step (when it says) is
    not before it."""
    at: Any = f.evidence.get("first_step", f.evidence.get("step"))
    return not (isinstance(at, (int, float)) and math.isfinite(at) and at < step)


def ratio_before(run: RunData, step: int) -> tuple[float, int]:
    """The median, over the samples before `step`, of the median update/weight ratio over layers, and how
    many samples it took."""
    per = []
    for k in sorted(run.samples):
        if k >= step:
            break
        rs = [s.update_ratio for s in run.samples[k] if math.isfinite(s.update_ratio) and s.update_ratio > 0]
        if rs:
            per.append(median(rs))
    return (median(per), len(per)) if per else (math.nan, 0)


def _lr_killed_units(run: RunData, out: list[Finding]) -> list[Finding]:
    """Units that were alive once and died (dead ReLUs) or saturated after updates above 1e-2 of the
    weights (the median over the samples before): the learning rate did it (CS231n: "with a proper
    setting of the learning rate this is less frequently an issue"). Told as one `lr-too-high` with those
    layers as evidence; a loss that wiggles or stays flat beside a learning rate too high is its symptom."""
    lr = next((f for f in out if f.code == "lr-too-high" and "blowup_step" not in f.evidence), None)
    hurt = [
        f
        for f in out
        if f.code in ("dead-relu", "saturated-activation")
        and f.evidence.get("alive_before")
        # units lost while the network still learns: no learning-rate story, unless the learning rate is
        # already named too high (then they are its symptom, not advice of their own)
        and (f.severity != "info" or lr is not None)
    ]
    scale = _unscaled_loss(run)
    if scale is not None and hurt:
        # the first loss is orders of magnitude above what predicting the targets' mean scores: unscaled
        # targets (or inputs) made the first updates huge; the learning rate is not the cause
        return [
            dataclasses.replace(f, message=f"{f.message}; {scale}", evidence={**f.evidence, "unscaled": True})
            if f in hurt
            else f
            for f in out
        ]
    head = lr
    caused: list[Finding] = []
    if hurt:
        first = min(f.evidence["first_step"] for f in hurt)
        ratio, n = ratio_before(run, first)
        if n and ratio > RATIO_HIGH:
            caused = hurt
            layers = ", ".join(
                f"{f.where} ({_frac(f):.0%} {'dead' if f.code == 'dead-relu' else 'saturated'} from step "
                f"{f.evidence['first_step']})"
                for f in hurt[:4]
            )
            recent = [r.loss for r in run.steps[-20:] if math.isfinite(r.loss)]
            loss = (
                f"; the loss is {sum(recent) / len(recent):.3g} over the last {len(recent)} steps"
                if recent
                else ""
            )
            before = f"{lr.message}. " if lr is not None else ""
            head = _f(
                "lr-too-high",
                "error",
                f"{before}Updates of {ratio:.2g} of the weights per step before step {first} (median "
                f"update/weight ratio over {n} samples, {ratio / RATIO_REF:.0f}x the ~1e-3 that trains well), then "
                f"the units stopped learning: {layers}{loss}",
                "lower the learning rate (try /10), or add a warm-up; LeakyReLU/GELU keep a gradient where "
                "ReLU dies",
                "optimizer",
                ratio=ratio,
                first_step=first,
                layers=[f.where for f in caused],
            )
    if head is None:
        return out
    gone = caused + [
        f
        for f in out
        if f is not head
        and f.code
        in ("lr-too-high", "loss-not-decreasing", "loss-oscillating", "vanishing-gradients", "lr-too-low")
    ]
    rest = [f for f in out if f not in gone and f is not head]
    return [_fold(head, [f for f in gone if f not in caused and f is not lr])] + rest


def _frac(f: Finding) -> float:
    return float(f.evidence.get("dead_frac", f.evidence.get("saturated_frac", math.nan)))


def _unscaled_loss(run: RunData) -> str | None:
    """Why the first updates were huge when the first loss is >= BLOWUP x the loss of predicting the
    targets' mean (or chance): a scale problem in the data, said in words; None otherwise."""
    calls = [c for c in run.loss_calls if c.baseline]
    first = run.steps[0].loss if run.steps else math.nan
    if len(calls) != 1 or not math.isfinite(first) or not first >= BLOWUP * calls[0].baseline:
        return None
    return (
        f"it followed a first loss of {first:.3g}, {first / calls[0].baseline:.0f}x what predicting the "
        f"targets' mean (or chance) scores ({calls[0].baseline:.3g}): unscaled targets or inputs made the first "
        "updates huge - standardize them"
    )
