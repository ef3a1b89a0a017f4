"""The label checks of a watched run, which read the task before they speak (`task.py` collects it).

`predicts-mode`: the predictions collapse onto one class. `class-imbalance`: skewed labels that the model
pays for. Skewed labels alone are no bug: a language model's next-token targets are skewed by Zipf's law,
and a loop that already weights its loss, uses a focal loss or samples by weights has applied the fix. So:

- language-model-like targets (a time dimension, or a vocabulary: more than `LM_CLASSES` classes) never
  get `class-imbalance`; their `predicts-mode` also needs the loss to sit at the entropy of the label
  frequencies, which is what a model that ignores its input scores;
- a model that predicts one class nearly always is `predicts-mode`, on imbalanced labels too (the class
  soaks up the others' predictions), and `class-imbalance` then names the cause when nothing rebalances;
- otherwise `class-imbalance` warns when a rare class is under-predicted and no fix is in place, is advice
  (`info`) when the fix is in place or the rare classes are predicted, and is silent when both hold.

At the end of the run the last period decides. While it runs, both are told only when two periods in a
row agree, the network has learned something (its cross-entropy below 95% of ln C, the loss of uniform
outputs, where tiny logit differences decide the argmax) and has stopped learning (its loss fell by less
than 3% over the last period), and a language model's collapse waits for the end: healthy programs (the
PyTorch quickstart, the CIFAR-10 tutorial at batch 4, the imbalanced-data tutorial, a language model's
unigram phase) sit at chance predicting one class for a few epochs before they learn. Both codes describe
a state, which later periods can contradict.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from .._core.classes import LM_CLASSES, collapsed, rare_classes, skewed, underpredicted, vocabulary
from .._core.findings import Finding
from .rundata import RunData, _f
from .task import PeriodClasses, TaskEvidence

__all__ = ["LM_CLASSES", "check_labels", "language_like"]

MIN_PER_CLASS = 20  # labels per class seen before the counts are read
MIN_PER_PERIOD = 10  # predictions per class a period needs to count
LM_COLLAPSE = 0.9  # a language model collapsed when its loss is >= 90% of the label entropy
UNTRAINED = 0.95  # a cross-entropy at >= 95% of ln C: outputs still about uniform
STILL_FALLING = 0.03
MIN_PERIODS_UNTRAINED = 3  # periods at the uniform loss before an untrained network's argmax counts  # a loss that fell by more than 3% over the last period is still learning


def language_like(task: TaskEvidence) -> bool:
    """Next-token targets: class targets with a time dimension, or a vocabulary (`_core.classes`)."""
    return task.sequence or vocabulary(task.n_classes or 0, task.target_counts or [])


def _entropy(counts: list[int]) -> float:
    n = sum(counts)
    return -sum(c / n * math.log(c / n) for c in counts if c > 0) if n else math.nan


def _collapse(p: PeriodClasses, lm: bool) -> tuple[int, float, float] | None:
    """(class, its prediction share, its label share) when the period's predictions collapse onto it."""
    mode = collapsed(p.preds, p.labels)
    if mode is not None and lm and math.isfinite(p.loss) and p.loss < LM_COLLAPSE * _entropy(p.labels):
        return None  # the argmax is the frequent token, but the loss shows the model reads its input
    return mode


def _untrained(p: PeriodClasses) -> bool:
    """The period's cross-entropy is still at the level of uniform outputs (>= 95% of ln C): the network
    has learned nothing yet, and tiny logit differences decide its argmax."""
    c = len(p.preds)
    return math.isfinite(p.ce) and c > 1 and p.ce >= UNTRAINED * math.log(c)


def _falling(periods: list[PeriodClasses]) -> bool:
    """The loss calls' mean fell by more than `STILL_FALLING` from the previous period to the last: the
    network is still learning, and its predictions may not stay where they are."""
    a, b = periods[-2].value, periods[-1].value
    return math.isfinite(a) and math.isfinite(b) and b < (1 - STILL_FALLING) * a


def _weights(counts: list[int], binary: bool) -> str:
    if binary:
        return f"BCEWithLogitsLoss(pos_weight=torch.tensor([{counts[0] / max(counts[1], 1):.3g}]))"
    total, k = sum(counts), sum(1 for c in counts if c > 0)
    ws = ", ".join(f"{total / (k * c):.3g}" if c else "0.0" for c in counts)
    return f"CrossEntropyLoss(weight=torch.tensor([{ws}]))"


def _recall(p: PeriodClasses, c: int) -> float:
    return p.hits[c] / p.labels[c] if p.labels[c] else math.nan


def check_labels(run: RunData) -> Iterator[Finding]:
    """predicts-mode and class-imbalance, judged against the task (see the module docstring)."""
    task: TaskEvidence | None = run.task
    if task is None or not task.target_counts:
        return
    # periods with >= 10 predictions per class (a run's short trailing block is not evidence)
    periods = [p for p in task.periods if sum(p.preds) >= MIN_PER_PERIOD * len(p.preds)]
    if not periods:
        return
    lm = language_like(task)
    # at the end of a short run (under 3 periods), a network whose outputs are still about uniform has not
    # learned yet: the argmax of tiny logit differences is no collapse (a deep MLP at its default init
    # predicts one class for its first dozens of steps); stuck there for 3 periods, it is one
    learning = (
        run.final and _untrained(periods[-1]) and max(task.complete, len(periods)) < MIN_PERIODS_UNTRAINED
    )
    periods = periods if not run.final else periods[-1:]
    last = periods[-1]
    collapses = [_collapse(p, lm) for p in periods]
    mode = collapses[-1] if all(collapses) and len({c[0] for c in collapses}) == 1 else None
    # while training: two periods agree, the network has learned something and stopped learning; an early
    # phase is no verdict, and the run's end judges it
    early = not run.final and (len(periods) < 2 or _untrained(last) or _falling(periods))
    if early or learning or (lm and not run.final):
        mode = None
    counts = task.target_counts
    present = [c for c in counts if c > 0]
    imbalanced = skewed(counts) and sum(present) >= MIN_PER_CLASS * len(present)
    hi = max(range(len(counts)), key=counts.__getitem__)
    fixes = ", ".join(task.fixes)
    if mode is not None:
        top, share, label_share = mode
        yield _mode_finding(run, task, mode, imbalanced and top == hi, fixes)
        if imbalanced and top == hi and not task.fixes and not lm:
            lo = min((c for c in range(len(counts)) if counts[c]), key=counts.__getitem__)
            yield _f(
                "class-imbalance",
                "warning",
                f"label counts are {counts[hi]} for class {hi} and {counts[lo]} for class {lo} "
                f"({counts[hi] / counts[lo]:.0f}:1) and nothing rebalances them (no class weights, focal loss "
                f"or weighted sampler): the network predicts class {hi} for {share:.0%} of the examples "
                f"in the last {task.period_kind}, class {lo} for {last.preds[lo] / sum(last.preds):.1%} "
                f"(recall {_recall(last, lo):.0%}; see predicts-mode)",
                f"weight the loss: {_weights(counts, task.binary)}, or sample by inverse class frequency "
                "(WeightedRandomSampler), or use focal loss (nbdebug.FocalLoss)",
                "targets",
                counts=counts,
                fixes=task.fixes,
            )
        return
    if not imbalanced or lm or early:
        return
    rare = rare_classes(counts)
    under = set(underpredicted(last.preds, last.labels, rare))
    if not run.final:
        under &= set(underpredicted(periods[-2].preds, periods[-2].labels, rare))
    lo = min(rare, key=counts.__getitem__) if rare else hi
    if under:
        j = min(under, key=counts.__getitem__)
        what = (
            f"the model under-predicts the rare classes: class {j} is {last.labels[j] / sum(last.labels):.1%} of "
            f"the labels but {last.preds[j] / sum(last.preds):.1%} of the predictions in the last "
            f"{task.period_kind} (recall {_recall(last, j):.0%})"
        )
    elif task.fixes:
        return  # the fix is in place and the rare classes are predicted: nothing to say
    else:
        what = (
            f"the model does predict the rare classes (class {lo}: recall {_recall(last, lo):.0%} in the last "
            f"{task.period_kind})"
        )
    done = f"; in place: {fixes}" if fixes else ""
    yield _f(
        "class-imbalance",
        "warning" if under and not task.fixes else "info",
        f"label counts range from {counts[lo]} to {counts[hi]} over {sum(counts)} training labels "
        f"(class {hi} most, class {lo} least); {what}{done}",
        (
            "the weighting in place is not enough yet: raise the rare classes' weight or train longer"
            if task.fixes
            else f"weight the loss ({_weights(counts, task.binary)}), resample (WeightedRandomSampler) or use "
            "focal loss (nbdebug.FocalLoss)"
        ),
        "targets",
        counts=counts,
        fixes=task.fixes,
    )


def _mode_finding(
    run: RunData, task: TaskEvidence, mode: tuple[int, float, float], majority: bool, fixes: str
) -> Finding:
    top, share, label_share = mode
    if majority and not task.fixes:
        hint = "the labels are skewed towards it (see class-imbalance): weight the loss or resample"
    elif task.fixes:
        hint = (
            f"the labels are already rebalanced ({fixes}), so look upstream: check the weights' direction, the "
            "learning rate, and that the inputs reach the output"
        )
    else:
        hint = (
            "check the learning rate and that inputs reach the output (no detach, normalized inputs, inputs and "
            "labels shuffled together); the model should overfit 20 examples (nbdebug.overfit)"
        )
    return _f(
        "predicts-mode",
        "warning",
        f"{share:.0%} of the predictions in the last {task.period_kind} are class {top}, whose label "
        f"frequency is {label_share:.0%}: the network predicts one class whatever the input",
        hint,
        "predictions",
        share=share,
        label_share=label_share,
    )
