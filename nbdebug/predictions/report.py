"""Predictions vs labels: top-k distributions, label vs predicted frequencies, and what they say.

From stats.stackexchange.com/q/352036 ('What should I do when my neural network doesn't learn?'): look not only at the predicted and true labels but at their
*frequencies*, to see whether the network has at least found the mode of the label distribution; look
at the top-5 predictions, because the output distribution shifts while the argmax stays the same; and
under class imbalance weight the loss (or use focal loss) so the network does not just learn the mode.

`predictions(model, data)` runs the model in eval mode under `no_grad` (mode, buffers and RNG restored
whatever happens) and returns a `PredictionReport`. Findings:

- `predicts-mode` (warning): one class takes >= 80% of the argmax predictions and >= 1.5x its label
  frequency, or (on skewed labels) all but a quarter of the other classes' share (CATALOGUE): a model
  that predicts the majority class nearly always has collapsed, whatever the labels.
- `class-imbalance`: largest/smallest label count >= 5 (CATALOGUE). Severity warning when the model
  under-predicts a rare class (predicted at < half its label frequency) without collapsing, else info:
  skewed labels the model copes with are worth knowing, not a bug; under a collapse it is the cause
  named next to `predicts-mode`; on a vocabulary (more than 20 classes, as a language model's tokens) it
  is never more than info. The hint carries balanced class weights `N / (C * count)` ready for
  `CrossEntropyLoss(weight=...)` or `FocalLoss(alpha=...)`.
- `nonfinite` (error): NaN/Inf in the model's output; those examples are left out of the report.

`TopkTracker` is the data hook for watching the distribution drift over training: feed it each batch's
outputs and labels, call `end_epoch()`, and its `history` shows the mean top-k probabilities and the
true-class probability moving while the argmax accuracy may stay flat.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._core.errors import NbdebugError
from .._core.findings import Finding, findings_html, findings_text
from .._core.result import Result

NEAR_UNIFORM = 1.5  # predicts-mode says "nearly uniform" when mean top probability < 1.5 x chance
FREQ_TOP = 20  # frequency plots show at most this many classes; the rest are summed as "other"

Output = str | int | Callable[[Any], torch.Tensor] | None


def _as_image(x: torch.Tensor, image_shape: tuple[int, ...] | None) -> np.ndarray | None:
    """An example as an (H, W) or (H, W, 3) array when it looks like an image, else None."""
    if image_shape is not None:
        x = x.reshape(image_shape)
    if x.dim() == 3 and x.shape[0] in (1, 3) and min(x.shape[1:]) >= 4:
        arr = x.float().numpy()
        return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    if x.dim() == 3 and x.shape[-1] == 3 and min(x.shape[:2]) >= 4:
        return x.float().numpy()
    if x.dim() == 2 and min(x.shape) >= 4:
        return x.float().numpy()
    return None


@dataclass(eq=False, repr=False)
class PredictionReport(Result):
    """What the model predicts on `data`, against the labels. Build it with `predictions()`.

    Attributes:
        probs: (N, C) predicted probabilities (CPU, float32).
        labels: (N,) true class indices, or None when the data carries no labels.
        classes: the C class names.
        k: how many top classes `topk` lists per example.
        scores: what the model outputs: "logits", "probabilities" or "log-probabilities".
        inputs: the first `keep_inputs` inputs in data order (CPU) for display, or None.
        index: the position in `data` of each row of `probs` (rows with non-finite output are dropped).
        topk: one row per example: label, pred, correct, confidence, loss, top1..topk, p1..pk.
        frequencies: one row per class: class, label_count, label_freq, pred_count, pred_freq,
            mean_prob (the soft distribution), recall.
        findings: `Finding`s (predicts-mode, class-imbalance, nonfinite).
    """

    probs: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    k: int
    scores: str = "logits"
    inputs: torch.Tensor | None = None
    index: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    topk: pd.DataFrame = field(init=False, repr=False)
    frequencies: pd.DataFrame = field(init=False, repr=False)
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.index is None:
            self.index = np.arange(self.n)
        self.topk = self._topk_frame()
        self.frequencies = self._frequency_frame()

    # -- derived quantities -------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.probs.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def preds(self) -> torch.Tensor:
        return self.probs.argmax(dim=1)

    @property
    def confidence(self) -> torch.Tensor:
        return self.probs.max(dim=1).values

    @property
    def losses(self) -> torch.Tensor | None:
        """Per-example cross-entropy -ln p(true class), or None without labels."""
        if self.labels is None:
            return None
        p = self.probs.gather(1, self.labels.unsqueeze(1)).squeeze(1)
        return -p.clamp_min(1e-12).log()

    @property
    def accuracy(self) -> float | None:
        if self.labels is None or self.n == 0:
            return None
        return float((self.preds == self.labels).float().mean())

    @property
    def topk_accuracy(self) -> float | None:
        """Share of examples whose true class is among the top k."""
        if self.labels is None or self.n == 0:
            return None
        top = self.probs.topk(self.k, dim=1).indices
        return float((top == self.labels.unsqueeze(1)).any(1).float().mean())

    @property
    def mode_baseline(self) -> float | None:
        """Accuracy of always predicting the most common label: the bar a network must clear."""
        if self.labels is None or self.n == 0:
            return None
        return float(np.bincount(self.labels.numpy(), minlength=self.n_classes).max() / self.n)

    @property
    def mean_topk(self) -> np.ndarray:
        """Mean of the sorted top-k probabilities: the shape of the output distribution."""
        return self.probs.topk(self.k, dim=1).values.mean(0).numpy()

    @property
    def class_weights(self) -> list[float] | None:
        """Balanced weights N / (C * count) per class, for CrossEntropyLoss(weight=...); None without labels."""
        if self.labels is None:
            return None
        return balanced_weights(np.bincount(self.labels.numpy(), minlength=self.n_classes))

    @property
    def confusion(self) -> pd.DataFrame:
        """Counts of (true class, predicted class); rows are true classes. Needs labels."""
        if self.labels is None:
            raise NbdebugError("the data has no labels, so there is no confusion matrix")
        c = self.n_classes
        flat = (self.labels * c + self.preds).numpy()
        m = np.bincount(flat, minlength=c * c).reshape(c, c)
        return pd.DataFrame(
            m,
            index=pd.Index(self.classes, name="true"),
            columns=pd.Index(self.classes, name="pred"),
        )

    def class_index(self, cls: int | str) -> int:
        """The index of a class given by index or name."""
        if isinstance(cls, str) and cls in self.classes:
            return self.classes.index(cls)
        try:
            i = int(cls)
        except (TypeError, ValueError):
            raise NbdebugError(f"unknown class {cls!r}; classes are {self.classes[:20]}") from None
        if not 0 <= i < self.n_classes:
            raise NbdebugError(f"class index {i} is outside [0, {self.n_classes})")
        return i

    def select(
        self,
        mistakes: bool = False,
        true_class: int | str | None = None,
        sort: str | None = None,
        descending: bool = True,
    ) -> list[int]:
        """Row positions to browse: only mistakes, only one true class, sorted by loss or confidence."""
        keep = torch.ones(self.n, dtype=torch.bool)
        if (mistakes or true_class is not None or sort == "loss") and self.labels is None:
            raise NbdebugError("the data has no labels: mistakes, true_class and sort='loss' need them")
        if mistakes:
            keep &= self.preds != self.labels
        if true_class is not None:
            keep &= self.labels == self.class_index(true_class)
        rows = torch.nonzero(keep).flatten()
        if sort is None or sort == "index":
            return rows.tolist()
        if sort == "loss":
            key = self.losses[rows]
        elif sort == "confidence":
            key = self.confidence[rows]
        else:
            raise NbdebugError(f"sort must be None, 'index', 'loss' or 'confidence', got {sort!r}")
        order = torch.sort(key, descending=descending, stable=True).indices
        return rows[order].tolist()

    def image(self, row: int) -> np.ndarray | None:
        """Row `row`'s input as an image array when it is image-like and was kept, else None."""
        pos = int(self.index[row])  # inputs are kept in data order, rows may skip non-finite ones
        if self.inputs is None or pos >= len(self.inputs):
            return None
        try:
            return _as_image(self.inputs[pos], self.image_shape)
        except RuntimeError:  # image_shape does not fit
            return None

    # -- frames ---------------------------------------------------------------------------------
    def _topk_frame(self) -> pd.DataFrame:
        top = self.probs.topk(self.k, dim=1)
        names = np.array(self.classes, dtype=object)
        cols: dict[str, Any] = {}
        if self.labels is not None:
            cols["label"] = names[self.labels.numpy()]
        cols["pred"] = names[self.preds.numpy()]
        if self.labels is not None:
            cols["correct"] = (self.preds == self.labels).numpy()
        cols["confidence"] = self.confidence.numpy()
        if self.labels is not None:
            cols["loss"] = self.losses.numpy()
        idx, val = top.indices.numpy(), top.values.numpy()
        for j in range(self.k):
            cols[f"top{j + 1}"] = names[idx[:, j]] if self.n else []
        for j in range(self.k):
            cols[f"p{j + 1}"] = val[:, j] if self.n else []
        return pd.DataFrame(cols, index=pd.Index(self.index, name="example"))

    def _frequency_frame(self) -> pd.DataFrame:
        c, n = self.n_classes, max(self.n, 1)
        pred_count = np.bincount(self.preds.numpy(), minlength=c)
        frame = pd.DataFrame({"class": self.classes})
        if self.labels is not None:
            label_count = np.bincount(self.labels.numpy(), minlength=c)
            correct = np.bincount(self.labels[self.preds == self.labels].numpy(), minlength=c)
            frame["label_count"] = label_count
            frame["label_freq"] = label_count / n
        else:
            frame["label_count"] = np.nan
            frame["label_freq"] = np.nan
        frame["pred_count"] = pred_count
        frame["pred_freq"] = pred_count / n
        frame["mean_prob"] = self.probs.mean(0).numpy() if self.n else np.nan
        if self.labels is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                frame["recall"] = np.where(label_count > 0, correct / np.maximum(label_count, 1), np.nan)
        frame.index.name = "index"
        return frame

    def top_classes(self, limit: int = FREQ_TOP) -> pd.DataFrame:
        """`frequencies` cut to the `limit` classes with the highest label or predicted frequency, the
        rest summed into one "other" row, so a 1000-class output stays readable."""
        f = self.frequencies
        if len(f) <= limit:
            return f
        key = f[["label_freq", "pred_freq"]].fillna(0).max(axis=1)
        keep = key.sort_values(ascending=False, kind="stable").index[:limit]
        top = f.loc[sorted(keep)]
        rest = f.drop(index=keep)
        other = {"class": f"other ({len(rest)})"}
        for col in ("label_count", "label_freq", "pred_count", "pred_freq", "mean_prob"):
            other[col] = rest[col].sum()
        if "recall" in f:
            other["recall"] = np.nan
        return pd.concat([top, pd.DataFrame([other], index=pd.Index([-1], name="index"))])

    # -- display ---------------------------------------------------------------------------------
    def summary(self) -> str:
        parts = [f"{self.n} examples, {self.n_classes} classes ({self.scores})"]
        if self.labels is not None and self.n:
            parts.append(
                f"accuracy {self.accuracy:.1%}, top-{self.k} {self.topk_accuracy:.1%}, "
                f"always predicting the most common label would score {self.mode_baseline:.1%}"
            )
        return "; ".join(parts)

    def to_text(self) -> str:
        cols = [
            c for c in ("class", "label_freq", "pred_freq", "mean_prob", "recall") if c in self.frequencies
        ]
        table = self.top_classes()[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return f"{self.summary()}\n{findings_text(self.findings)}\n{table}"

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import overview_figure

        img = png_html(figure_png(overview_figure(self)), alt="label vs predicted frequencies")
        return (
            f'<div class="nbdebug-predictions"><p>{html.escape(self.summary())}</p>'
            f"{findings_html(self.findings)}{img}</div>"
        )

    def panel(self) -> Any:
        """The interactive panel (ipywidgets) over this report."""
        from .panel import PredictionsPanel

        return PredictionsPanel(self)


def balanced_weights(counts: Sequence[int] | np.ndarray) -> list[float]:
    """N / (C * count) per class (scikit-learn's "balanced"); a class absent from the labels gets the
    largest weight, as if it were the rarest, so pasting the weights never silences a class."""
    counts = np.asarray(counts, dtype=float)
    present = counts > 0
    if not present.any():
        return [1.0] * len(counts)
    w = np.zeros_like(counts)
    w[present] = counts.sum() / (present.sum() * counts[present])
    w[~present] = w[present].max()
    return [float(f"{v:.4g}") for v in w]


def _weights_literal(weights: list[float]) -> str:
    if len(weights) > 20:
        return "report.class_weights"
    return "torch.tensor([" + ", ".join(f"{w:g}" for w in weights) + "])"
