"""The class-frequency judgements `watch`, `check` and `predictions` share: skewed labels, predictions that collapse
onto one class, rare classes the model under-predicts, and targets that are a vocabulary. Thresholds are
the catalogue's (`class-imbalance`, `predicts-mode`), and how far a first loss may sit from chance (`initial-loss`)."""

from __future__ import annotations

from collections.abc import Sequence

IMBALANCE_RATIO = 5.0  # class-imbalance: largest / smallest label count of the classes present
UNDERPREDICTED = 0.5  # a rare class predicted less than half as often as it is labelled
MODE_SHARE = 0.8  # predicts-mode: one class takes >= 80% of the argmax predictions ...
MODE_RATIO = 1.5  # ... and >= 1.5x its label frequency,
MODE_ABSORB = 0.25  # ... or the other classes keep <= a quarter of their label share of the predictions
LM_CLASSES = 20  # more classes than this, none of them half the labels: a vocabulary (letters, words)


def skewed(counts: Sequence[int]) -> bool:
    """Label counts whose largest is >= `IMBALANCE_RATIO` times the smallest (of the classes present)."""
    present = [c for c in counts if c > 0]
    return len(present) >= 2 and max(present) / min(present) >= IMBALANCE_RATIO


def rare_classes(counts: Sequence[int]) -> list[int]:
    """Classes present with at most 1 / `IMBALANCE_RATIO` of the largest class's labels."""
    top = max(counts, default=0)
    return [c for c, n in enumerate(counts) if 0 < n <= top / IMBALANCE_RATIO]


def collapsed(preds: Sequence[float], labels: Sequence[float]) -> tuple[int, float, float] | None:
    """(class, its share of the predictions, its share of the labels) when one class takes >= 80% of the
    predictions and either >= 1.5x its label share or all but a quarter of the other classes' share: on
    skewed labels the majority class soaking up the rest is a collapse too."""
    n, m = sum(preds), sum(labels)
    if not n or not m:
        return None
    top = max(range(len(preds)), key=preds.__getitem__)
    share, label_share = preds[top] / n, labels[top] / m
    absorbs = 1 - share <= MODE_ABSORB * (1 - label_share)
    if share >= MODE_SHARE and (share >= MODE_RATIO * label_share or absorbs):
        return top, share, label_share
    return None


def underpredicted(preds: Sequence[float], labels: Sequence[float], classes: Sequence[int]) -> list[int]:
    """Those of `classes` predicted less than `UNDERPREDICTED` times as often as they are labelled."""
    n, m = sum(preds), sum(labels)
    if not n or not m:
        return []
    return [c for c in classes if labels[c] and preds[c] / n < UNDERPREDICTED * labels[c] / m]


def vocabulary(n_classes: int, counts: Sequence[int]) -> bool:
    """More than `LM_CLASSES` classes none of which is half the labels: a language model's tokens, whose
    Zipf-like frequencies make rare classes the nature of the data."""
    total = sum(counts)
    return n_classes > LM_CLASSES and total > 0 and max(counts) < 0.5 * total


INITIAL_MARGIN = (
    0.5,
    0.1,
)  # a first loss within 0.5 * expected + 0.1 of chance is what an untrained net scores
INITIAL_FAR = (
    3.0  # at >= 3x chance the start is Karpathy's "hockey stick" (makemore part 3: 27 vs ln 27 = 3.3)
)


def initial_loss_severity(loss: float, expected: float) -> str | None:
    """How far a first loss is from chance (`expected`, ln C or ln 2): None within the margin; "warning"
    at >= INITIAL_FAR x chance (the init wastes the first steps squashing the logits, or worse) or below
    chance (a leak); "info" in between: a deep network's default init (a ResNet-18 starts at ~1.6x ln 10)
    or a fresh head on pretrained features is over-confident at first, and trains."""
    a, b = INITIAL_MARGIN
    if abs(loss - expected) <= a * expected + b:
        return None
    return "warning" if loss < expected or loss >= INITIAL_FAR * expected else "info"
