"""The class-frequency judgements `watch` and `predictions` share: skewed labels, predictions that collapse
onto one class, rare classes the model under-predicts, and targets that are a vocabulary. Thresholds are
the catalogue's (`class-imbalance`, `predicts-mode`)."""

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
