"""What the train / validation curves say to do next: overfitting, underfitting, a validation set too
small to tell, validation above training.

The reading is CS231n's ("Training & Validation accuracy"): a large and growing gap between training and
validation accuracy means the model overfits (regularize, get more data, stop earlier); no gap at a low
accuracy means it underfits (more capacity, train longer or faster). Every difference is judged against
the sampling noise of the validation set, the binomial standard error of its accuracy, sqrt(p(1-p)/n):
a gap or a change smaller than twice that is not evidence, and the advice says so instead of advising.
This is advice about a run's next step, not a bug: every finding here is `info`.

Pure functions of the per-epoch table `Watch.epochs` (complete epochs with a validation pass).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._core.findings import Finding

CODES = ("overfitting", "underfitting", "val-too-small", "val-above-train")
MIN_EPOCHS = 3  # epochs with validation numbers before any advice
NOISE_Z = 2.0  # a difference counts when it exceeds this many standard errors
RISE_EPOCHS = 2  # epochs the validation loss must have risen from its minimum
RISE_REL = 0.03  # ... by at least this fraction of the minimum
GAP_GROWTH_EPOCHS = 3  # epochs over which the accuracy gap must keep growing
UNDERFIT_BELOW = 0.9  # both accuracies under this (a working model fits 20 examples perfectly)
PLATEAU_REL = 0.02  # training loss within 2% over the last epochs: flat
FITTED = 0.5  # overfitting advice once the training loss is at most half the first epoch's
LOW_RATIO = 1e-4  # median update/weight ratio under this: the learning rate may be what holds it back


@dataclass(frozen=True)
class Epoch:
    """One complete epoch as the advice reads it."""

    epoch: int
    loss: float  # mean training loss
    train_acc: float
    val_loss: float
    val_acc: float
    val_n: int  # validation examples behind val_acc

    @property
    def se(self) -> float:
        """Binomial standard error of the validation accuracy (0 when unknown)."""
        if not self.val_n or not math.isfinite(self.val_acc):
            return 0.0
        p = min(max(self.val_acc, 1e-3), 1 - 1e-3)
        return math.sqrt(p * (1 - p) / self.val_n)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def epochs_from_frame(frame: Any) -> list[Epoch]:
    """Rows of `Watch.epochs` that have a validation number (loss or accuracy)."""
    out = []
    for r in frame.itertuples(index=False):
        if _finite(r.val_loss) or _finite(r.val_acc):
            out.append(
                Epoch(
                    int(r.epoch),
                    float(r.loss),
                    float(r.train_acc),
                    float(r.val_loss),
                    float(r.val_acc),
                    int(getattr(r, "val_n", 0) or 0),
                )  # fmt: skip
            )
    return out


def best_epoch(epochs: Sequence[Epoch]) -> int | None:
    """The epoch with the lowest validation loss (else the highest validation accuracy)."""
    with_loss = [e for e in epochs if _finite(e.val_loss)]
    if with_loss:
        return min(with_loss, key=lambda e: e.val_loss).epoch
    with_acc = [e for e in epochs if _finite(e.val_acc)]
    return max(with_acc, key=lambda e: e.val_acc).epoch if with_acc else None


def _f(code: str, message: str, hint: str, **evidence: Any) -> Finding:
    return Finding(code, "info", message, hint, "validation", evidence)


def _overfitting(epochs: list[Epoch], dropout: bool) -> Finding | None:
    """Validation loss up for RISE_EPOCHS epochs from its minimum while the training loss keeps falling,
    or a train/validation accuracy gap beyond the noise that grew over the last GAP_GROWTH_EPOCHS epochs
    while training accuracy rose and training loss fell."""
    last = epochs[-1]
    best = min((e for e in epochs if _finite(e.val_loss)), key=lambda e: e.val_loss, default=None)
    reason = None
    if best is not None and last.epoch - best.epoch >= RISE_EPOCHS and _finite(last.val_loss):
        after = [e for e in epochs if e.epoch > best.epoch and _finite(e.val_loss)]
        # the rise must exceed the validation loss's own noise: its standard error is taken as
        # loss / sqrt(n) (the spread of per-example cross-entropy is of the order of its mean)
        noise = NOISE_Z * best.val_loss / math.sqrt(last.val_n) if last.val_n else 0.0
        rise = last.val_loss - best.val_loss
        rising = rise > max(RISE_REL * best.val_loss, noise) and all(
            e.val_loss > best.val_loss for e in after
        )
        train_falls = _finite(last.loss) and _finite(best.loss) and last.loss < best.loss * (1 - PLATEAU_REL)
        # a validation loss that rises while validation accuracy still clearly improves is early noise
        acc_up = (
            _finite(best.val_acc)
            and _finite(last.val_acc)
            and last.val_acc - best.val_acc > NOISE_Z * last.se
        )
        rising = rising and not acc_up
        if rising and train_falls and len(after) >= RISE_EPOCHS:
            reason = (
                f"validation loss rose from {best.val_loss:.4g} at epoch {best.epoch} to {last.val_loss:.4g} at "
                f"epoch {last.epoch} while the training loss kept falling ({best.loss:.4g} -> {last.loss:.4g})"
            )
    scored = [e for e in epochs if _finite(e.train_acc) and _finite(e.val_acc)]
    if reason is None and len(scored) >= GAP_GROWTH_EPOCHS:
        recent = scored[-GAP_GROWTH_EPOCHS:]
        window = [(e.epoch, e.train_acc - e.val_acc, e.se) for e in recent]
        growing = all(b[1] >= a[1] for a, b in zip(window, window[1:]))
        _, gap, se = window[-1]
        grew = window[-1][1] - window[0][1]
        # the gap grows because training improves, not because both wander within the noise
        learning = recent[-1].train_acc > recent[0].train_acc and (
            not _finite(recent[-1].loss) or recent[-1].loss < recent[0].loss * (1 - PLATEAU_REL)
        )
        if growing and learning and gap > NOISE_Z * se + 0.02 and grew > NOISE_Z * se:
            reason = (
                f"the gap between training and validation accuracy grew from {window[0][1]:.1%} at epoch "
                f"{window[0][0]} to {gap:.1%} at epoch {window[-1][0]} (validation standard error {se:.1%})"
            )
    # overfitting needs a model that fits its training data: training loss at most half the first epoch's
    fitted = _finite(epochs[0].loss) and _finite(last.loss) and last.loss <= FITTED * epochs[0].loss
    if reason is None or not fitted:
        return None
    b = best_epoch(epochs)
    at = next(e for e in epochs if e.epoch == b)
    stop = (
        f"stop at epoch {b} (validation loss {at.val_loss:.4g}, accuracy {at.val_acc:.1%})"
        if _finite(at.val_loss)
        else f"stop at epoch {b} (validation accuracy {at.val_acc:.1%})"
    )
    more = "" if dropout else ", dropout"
    return _f(
        "overfitting",
        f"the model overfits: {reason}; best epoch {b}",
        f"regularize: weight decay (e.g. AdamW(weight_decay=1e-2) or SGD(weight_decay=5e-4)){more}, data "
        f"augmentation or more training data; or {stop} (early stopping)",
        best_epoch=b,
    )


def _underfitting(epochs: list[Epoch], update_ratio: float | None) -> Finding | None:
    """Training and validation accuracy within the noise of each other, both below UNDERFIT_BELOW and no
    longer improving, and the training loss flat over the last MIN_EPOCHS epochs."""
    window = epochs[-MIN_EPOCHS:]
    if not all(_finite(e.train_acc) and _finite(e.val_acc) and _finite(e.loss) for e in window):
        return None
    last, first = window[-1], window[0]
    se = max(last.se, 1e-3)
    train = sum(e.train_acc for e in window) / len(window)  # epoch-to-epoch jitter averages out
    val = sum(e.val_acc for e in window) / len(window)
    close = abs(train - val) <= NOISE_Z * se + 0.02
    low = train < UNDERFIT_BELOW and val < UNDERFIT_BELOW
    plateau = last.val_acc - first.val_acc <= NOISE_Z * se and last.train_acc - first.train_acc <= 0.01
    flat = first.loss > 0 and last.loss >= first.loss * (1 - PLATEAU_REL)
    if not (close and low and plateau and flat):
        return None
    lr = ""
    if update_ratio is not None and math.isfinite(update_ratio) and update_ratio < LOW_RATIO:
        lr = f"; the update/weight ratio is {update_ratio:.1e}, far under the ~1e-3 reference: raise the learning rate first"
    return _f(
        "underfitting",
        f"the model underfits: training accuracy {train:.1%} and validation accuracy {val:.1%} (means over "
        f"epochs {first.epoch}-{last.epoch}) are close and no longer improve, training loss flat at "
        f"{last.loss:.4g}{lr}",
        "give the model more capacity (wider or deeper layers, a non-linear model for a non-linear task), train "
        "longer or with a higher learning rate; check the model can overfit 20 examples (nbdebug.overfit)",
        train_acc=train,
        val_acc=val,
    )


def _too_small(epochs: list[Epoch]) -> Finding | None:
    """The validation set is too small to tell: its accuracy's standard error is above 2.5% and every change
    of the validation accuracy over the last MIN_EPOCHS epochs is within twice that."""
    window = epochs[-MIN_EPOCHS:]
    if not all(_finite(e.val_acc) and e.val_n for e in window):
        return None
    se = window[-1].se
    moves = [abs(b.val_acc - a.val_acc) for a, b in zip(window, window[1:])]
    if se > 0.025 and max(moves) <= NOISE_Z * se:
        n = window[-1].val_n
        return _f(
            "val-too-small",
            f"the validation set has {n} examples: its accuracy ({window[-1].val_acc:.1%}) is uncertain by "
            f"+-{NOISE_Z * se:.1%} (two standard errors), larger than any change over epochs "
            f"{window[0].epoch}-{window[-1].epoch}, so the curves cannot tell overfitting from noise",
            f"validate on more examples (at least {math.ceil(0.25 / (NOISE_Z * 0.01) ** 2)} for +-1%), or average "
            "over several epochs before acting on a difference",
            n=n,
            se=se,
        )
    return None


def _val_above_train(epochs: list[Epoch], dropout: bool) -> Finding | None:
    """Validation accuracy above training accuracy by more than the noise on the last MIN_EPOCHS epochs,
    with training accuracy no longer rising (early on, training accuracy lags: it is averaged over an epoch
    while the weights improve)."""
    window = epochs[-MIN_EPOCHS:]
    if not all(_finite(e.train_acc) and _finite(e.val_acc) for e in window):
        return None
    above = all(e.val_acc - e.train_acc > NOISE_Z * max(e.se, 1e-3) + 0.01 for e in window)
    settled = window[-1].train_acc - window[0].train_acc <= 0.02
    if not (above and settled):
        return None
    last = window[-1]
    if dropout:
        why = (
            "dropout (or batch norm on training batches) behaves differently in training and evaluation, so "
            "the training accuracy is measured on a noisier network; augmenting the training data does the same"
        )
        hint = "nothing to fix: compare both in eval mode if you need a like-for-like number"
    else:
        why = (
            "the model has no dropout or batch norm, so unless the training data is augmented this hints at "
            "validation examples leaking into training, or at mislabelled training examples"
        )
        hint = "check that no validation example is also in the training set, and look at the training labels"
    return _f(
        "val-above-train",
        f"validation accuracy {last.val_acc:.1%} is above training accuracy {last.train_acc:.1%} on epochs "
        f"{window[0].epoch}-{last.epoch}: {why}",
        hint,
        dropout=dropout,
    )


def fit_findings(
    epochs: Sequence[Epoch], *, dropout: bool = False, update_ratio: float | None = None
) -> list[Finding]:
    """Advice from the complete epochs with validation numbers (none before MIN_EPOCHS of them)."""
    epochs = list(epochs)
    if len(epochs) < MIN_EPOCHS:
        return []
    out = [f for f in (_overfitting(epochs, dropout), _underfitting(epochs, update_ratio)) if f is not None]
    if not out:
        small = _too_small(epochs)
        if small is not None:
            out.append(small)
    above = _val_above_train(epochs, dropout)
    if above is not None:
        out.append(above)
    return out
