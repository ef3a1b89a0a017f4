"""Predictions vs labels: top-k distributions, label vs predicted frequencies, and what they say.

From the practitioner's notes: look not only at the predicted and true labels but at their
*frequencies*, to see whether the network has at least found the mode of the label distribution; look
at the top-5 predictions, because the output distribution shifts while the argmax stays the same; and
under class imbalance weight the loss (or use focal loss) so the network does not just learn the mode.

`predictions(model, data)` runs the model in eval mode under `no_grad` (mode, buffers and RNG restored
whatever happens) and returns a `PredictionReport`. Findings:

- `predicts-mode` (warning): one class takes >= 80% of the argmax predictions and >= 1.5x its label
  frequency (CATALOGUE).
- `class-imbalance`: largest/smallest label count >= 5 (CATALOGUE). Severity warning when the model
  under-predicts a rare class (predicted at < half its label frequency), else info: skewed labels the
  model copes with are worth knowing, not a bug. The hint carries balanced class weights
  `N / (C * count)` ready for `CrossEntropyLoss(weight=...)` or `FocalLoss(alpha=...)`.
- `nonfinite` (error): NaN/Inf in the model's output; those examples are left out of the report.

`TopkTracker` is the data hook for watching the distribution drift over training: feed it each batch's
outputs and labels, call `end_epoch()`, and its `history` shows the mean top-k probabilities and the
true-class probability moving while the argmax accuracy may stay flat.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._core.data import iter_batches, model_device, split_batch, to_device
from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import preserved

MODE_SHARE = 0.8  # predicts-mode: share of argmax predictions taken by one class ...
MODE_RATIO = 1.5  # ... and at least this multiple of its label frequency
IMBALANCE_RATIO = 5.0  # class-imbalance: largest / smallest label count
UNDERPREDICTED = 0.5  # class-imbalance is a warning when a rare class is predicted < half as often
NEAR_UNIFORM = 1.5  # predicts-mode says "nearly uniform" when mean top probability < 1.5 x chance
FREQ_TOP = 20  # frequency plots show at most this many classes; the rest are summed as "other"

Output = str | int | Callable[[Any], torch.Tensor] | None


def binary_logits(out: torch.Tensor) -> torch.Tensor:
    """Turn a single-logit binary classifier's output (N,) or (N, 1) into 2-class logits (N, 2).

    softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)], so the report matches BCEWithLogitsLoss exactly.
    Use as `predictions(model, data, output=binary_logits)`.
    """
    z = out.reshape(out.shape[0], -1)
    if z.shape[1] != 1:
        raise NbdebugError(f"binary_logits expects one logit per example, got {describe(out)}")
    return torch.cat([torch.zeros_like(z), z], dim=1)


def _select_output(out: Any, output: Output) -> torch.Tensor:
    """Pick the class scores out of whatever the model returned, or say how to."""
    if output is not None:
        try:
            if callable(output):
                out = output(out)
            elif isinstance(out, Mapping):
                out = out[output]
            elif isinstance(out, (tuple, list)):
                out = out[int(output)]
            else:
                out = getattr(out, str(output))
        except (KeyError, IndexError, AttributeError, TypeError) as e:
            raise NbdebugError(
                f"output={output!r} does not select anything from the model's output {describe(out)}: "
                f"{type(e).__name__}: {e}"
            ) from None
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        keys = list(out)
        raise NbdebugError(
            f"the model returned a dict with keys {keys}, not a tensor of class scores: pass "
            f"output={keys[0]!r} (a key) or output=lambda out: ... to pick the logits"
        )
    if isinstance(out, (tuple, list)):
        raise NbdebugError(
            f"the model returned a {type(out).__name__} of {len(out)} ({describe(out)}), not a tensor of "
            "class scores: pass output=0 (an index) or output=lambda out: ... to pick the logits"
        )
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits  # transformers-style ModelOutput
    raise NbdebugError(
        f"the model returned {describe(out)}, not a tensor of class scores: pass output= to pick them"
    )


def _check_scores(out: torch.Tensor) -> None:
    if out.dim() == 1 or (out.dim() == 2 and out.shape[1] == 1):
        raise NbdebugError(
            f"the model's output has shape {tuple(out.shape)}: one value per example is regression or a "
            "single-logit binary classifier, not class scores. For a binary classifier pass "
            "output=nbdebug.binary_logits"
        )
    if out.dim() != 2:
        raise NbdebugError(
            f"the model's output has shape {tuple(out.shape)}; predictions() needs class scores of shape "
            "(N, C), one row per example. Pass output=lambda out: ... to reduce or reshape it"
        )
    if not out.is_floating_point():
        raise NbdebugError(f"the model's output is {describe(out)}; class scores must be floating point")


def _labels_of(target: Any, scores: torch.Tensor) -> torch.Tensor:
    """Class indices (N,) from a batch's target: indices, integral floats, or one-hot / soft rows."""
    try:
        y = torch.as_tensor(target).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise NbdebugError(
            f"labels must be class indices, got {describe(target)}; map names to indices and pass the "
            "names as classes="
        ) from None
    n = scores.shape[0]
    if y.dim() == 2 and tuple(y.shape) == tuple(scores.shape):
        return y.argmax(dim=1)  # one-hot or soft targets
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dim() != 1 or y.shape[0] != n:
        raise NbdebugError(
            f"labels {describe(y)} do not match the model's output {tuple(scores.shape)}: expected one "
            f"class index per example, shape ({n},)"
        )
    if y.is_floating_point():
        if not bool((y == y.round()).all()):
            sample = [round(v, 3) for v in y[y != y.round()][:3].tolist()]
            raise NbdebugError(
                f"labels are float values such as {sample}, not class indices: this looks like "
                "regression, and predictions() compares class scores with class labels"
            )
    elif y.dtype == torch.bool:
        y = y.long()
    return y.long()


def _classes_of(data: Any, classes: Any, n_classes: int) -> list[str]:
    if classes is None:
        for obj in (data, getattr(data, "dataset", None)):
            if obj is not None and getattr(obj, "classes", None) is not None:
                classes = obj.classes
                break
    if classes is None:
        return [str(i) for i in range(n_classes)]
    if isinstance(classes, Mapping):
        names = [str(classes.get(i, i)) for i in range(n_classes)]
    else:
        names = [str(c) for c in classes]
    if len(names) != n_classes:
        raise NbdebugError(f"classes has {len(names)} names but the model outputs {n_classes} class scores")
    return names


def _score_kind(out: torch.Tensor) -> str:
    """Whether rows are logits, probabilities (softmax applied) or log-probabilities (log_softmax)."""
    if out.numel() == 0:
        return "logits"
    if bool((out >= 0).all()) and bool(((out.sum(1) - 1).abs() < 1e-3).all()):
        return "probabilities"
    if bool((out <= 1e-6).all()) and bool((torch.logsumexp(out, 1).abs() < 1e-3).all()):
        return "log-probabilities"
    return "logits"


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


@dataclass(eq=False)
class PredictionReport:
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

    def __repr__(self) -> str:
        return f"PredictionReport({self.summary()}; {len(self.findings)} findings)"

    def _text(self) -> str:
        cols = [
            c for c in ("class", "label_freq", "pred_freq", "mean_prob", "recall") if c in self.frequencies
        ]
        table = self.top_classes()[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}")
        return f"{self.summary()}\n{findings_text(self.findings)}\n{table}"

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import plot_overview

        img = png_html(figure_png(plot_overview(self)), alt="label vs predicted frequencies")
        return (
            f'<div class="nbdebug-predictions"><p>{html.escape(self.summary())}</p>'
            f"{findings_html(self.findings)}{img}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self._text(), "text/html": self._html()}

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


def _findings(report: PredictionReport, dropped: list[int]) -> list[Finding]:
    found: list[Finding] = []
    if dropped:
        found.append(
            Finding(
                "nonfinite",
                "error",
                f"the model's output has NaN or Inf for {len(dropped)} example(s) (first: example "
                f"{dropped[0]}); they are left out of this report",
                "find the first layer that produces them with %nn_check or nbdebug.trace on that example",
                evidence={"examples": dropped[:100]},
            )
        )
    if report.labels is None or report.n == 0:
        return found
    f = report.frequencies
    names = report.classes
    imbalance: Finding | None = None
    counts = f["label_count"].to_numpy()
    present = counts[counts > 0]
    if len(present) >= 2 and present.max() / present.min() >= IMBALANCE_RATIO:
        big, small = (
            int(np.argmax(np.where(counts > 0, counts, -1))),
            int(np.argmin(np.where(counts > 0, counts, np.inf))),
        )
        ratio = counts[big] / counts[small]
        rare = (counts > 0) & (counts <= counts.max() / IMBALANCE_RATIO)
        under = rare & (f["pred_freq"].to_numpy() < UNDERPREDICTED * f["label_freq"].to_numpy())
        weights = report.class_weights
        literal = _weights_literal(weights)
        if under.any():
            j = int(np.flatnonzero(under)[np.argmin(counts[under])])
            tail = (
                f"; the model under-predicts the rare classes: class {names[j]!r} is "
                f"{f['label_freq'][j]:.1%} of the labels but {f['pred_freq'][j]:.1%} of the predictions "
                f"(recall {f['recall'][j]:.0%})"
            )
        else:
            j = small
            tail = (
                f"; the model does predict the rare classes (class {names[j]!r}: {f['pred_freq'][j]:.1%} of "
                f"the predictions, recall {f['recall'][j]:.0%})"
            )
        imbalance = Finding(
            "class-imbalance",
            "warning" if under.any() else "info",
            f"class {names[big]!r} has {int(counts[big])} labels and class {names[small]!r} has "
            f"{int(counts[small])} ({ratio:.0f}:1){tail}",
            f"weight the loss by inverse class frequency: nn.CrossEntropyLoss(weight={literal}), "
            f"or use nbdebug.FocalLoss(gamma=2.0, alpha={literal}) to focus on the hard examples",
            evidence={
                "label_counts": counts.tolist(),
                "ratio": float(ratio),
                "class_weights": weights,
                "underpredicted": [names[i] for i in np.flatnonzero(under)],
            },
        )
    top = int(f["pred_freq"].to_numpy().argmax())
    pf, lf = float(f["pred_freq"][top]), float(f["label_freq"][top])
    if report.n_classes >= 2 and pf >= MODE_SHARE and pf >= MODE_RATIO * lf:
        label_mode = int(np.argmax(counts))
        what = "the mode and little else" if label_mode == top else "one class and little else"
        mean_top = float(report.confidence.mean())
        chance = 1.0 / report.n_classes
        uniform = ""
        if mean_top < NEAR_UNIFORM * chance:
            uniform = (
                f"; its outputs are nearly uniform (mean top probability {mean_top:.2f}, chance {chance:.2f}), "
                "as for an untrained network, so tiny logit differences decide every argmax"
            )
        hint = (
            "the labels are skewed (see class-imbalance): weight the loss or use focal loss"
            if imbalance is not None
            else "the labels are not skewed towards it, so look upstream: check that the inputs reach "
            "the model normalized and varied, that inputs and labels are shuffled together, that the "
            "model can overfit 20 examples (%nn_overfit), and that the learning rate is not too high"
        )
        found.append(
            Finding(
                "predicts-mode",
                "warning",
                f"{pf:.0%} of predictions are class {names[top]!r}, which is {lf:.0%} of the labels; the "
                f"network has found {what} (accuracy {report.accuracy:.0%}){uniform}",
                hint,
                evidence={"class": names[top], "pred_freq": pf, "label_freq": lf},
            )
        )
    if imbalance is not None:
        found.append(imbalance)
    return found


def predictions(
    model: nn.Module,
    data: Any,
    k: int = 5,
    *,
    classes: Sequence[str] | Mapping[int, str] | None = None,
    output: Output = None,
    labels: Callable[[Any], Any] | torch.Tensor | Sequence[int] | None = None,
    n: int | None = None,
    batch_size: int = 256,
    keep_inputs: int = 2000,
    image_shape: tuple[int, ...] | None = None,
) -> PredictionReport:
    """Run `model` over `data` in eval mode under no_grad and compare predictions with labels.

    Args:
        model: a classifier whose output (or `output(...)` of it) is (N, C) logits, probabilities or
            log-probabilities (detected from the values).
        data: DataLoader, Dataset, (x, y) tensors, or an iterable of batches (tuple/list or dict with a
            `label`/`labels`/`target` key).
        k: how many top classes to list per example (clipped to the class count).
        classes: class names; default `data.classes` (or `data.dataset.classes`), else "0".."C-1".
        output: picks the class scores from the model's output: a dict key, a tuple index, or a function.
        labels: the true classes when the batches do not carry them: a tensor/list (in data order) or a
            function batch -> labels.
        n: use only the first `n` examples.
        batch_size: batch size for tensors and Datasets (DataLoaders keep theirs).
        keep_inputs: how many inputs to keep (on CPU) for the panel to show.
        image_shape: reshape each input to this shape to show it (e.g. (8, 8) for flat digits).
    """
    if not isinstance(model, nn.Module):
        raise NbdebugError(f"model must be a torch.nn.Module, got {describe(model)}")
    if k < 1:
        raise NbdebugError(f"k must be >= 1, got {k}")
    device = model_device(model)
    outs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []
    count = n_kept = 0
    given = None
    if labels is not None and not callable(labels):
        try:
            given = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            raise NbdebugError(
                f"labels must be class indices (a tensor or a list of ints), got {describe(labels)}; map "
                "names to indices and pass the names as classes="
            ) from None
    with preserved(model), torch.no_grad():
        model.eval()
        for batch in iter_batches(data, batch_size):
            inputs, kwargs, target = split_batch(batch)
            if callable(labels):
                target = labels(batch)
            out = model(*to_device(inputs, device), **to_device(kwargs, device))
            scores = _select_output(out, output)
            _check_scores(scores)
            if outs and scores.shape[1] != outs[0].shape[1]:
                raise NbdebugError(
                    f"the model output {outs[0].shape[1]} class scores on the first batch and "
                    f"{scores.shape[1]} on a later one"
                )
            scores = scores.detach().float().cpu()
            b = scores.shape[0]
            if given is not None:
                target = given[count : count + b]
            if target is not None:
                ys.append(_labels_of(target, scores))
            elif ys:
                raise NbdebugError("some batches carry labels and some do not")
            outs.append(scores)
            if inputs and isinstance(inputs[0], torch.Tensor) and n_kept < keep_inputs:
                x = inputs[0][: keep_inputs - n_kept].detach().cpu()
                kept.append(x)
                n_kept += len(x)
            count += b
            if n is not None and count >= n:
                break
    if not outs:
        raise NbdebugError("data is empty: it yielded no batch")
    out = torch.cat(outs)[:n]
    y = torch.cat(ys)[:n] if ys else None
    if y is not None and len(y) != len(out):
        raise NbdebugError(f"got {len(y)} labels for {len(out)} examples")
    n_classes = out.shape[1]
    if y is not None and len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        bad = sorted(set(y[(y < 0) | (y >= n_classes)].tolist()))
        raise NbdebugError(
            f"labels contain classes {bad[:10]} outside the model's {n_classes} outputs (0..{n_classes - 1}): "
            "the output layer is too small for the labels, or the labels are 1-based"
        )
    names = _classes_of(data, classes, n_classes)
    finite = torch.isfinite(out).all(1)
    dropped = torch.nonzero(~finite).flatten().tolist()
    index = torch.nonzero(finite).flatten()
    out = out[finite]
    kind = _score_kind(out)
    if kind == "probabilities":
        probs = out
    elif kind == "log-probabilities":
        probs = out.exp()
    else:
        probs = torch.softmax(out, dim=1)
    inputs_kept = torch.cat(kept)[: len(finite)] if kept else None
    report = PredictionReport(
        probs=probs.contiguous(),
        labels=y[finite] if y is not None else None,
        classes=names,
        k=min(k, n_classes),
        scores=kind,
        inputs=inputs_kept,
        index=index.numpy(),
        image_shape=tuple(image_shape) if image_shape is not None else None,
    )
    report.findings = _findings(report, dropped)
    return report


# -- the data hook for watching the distribution drift over training ---------------------------------


def snapshot(outputs: torch.Tensor, labels: torch.Tensor | None = None, k: int = 5) -> dict[str, float]:
    """Summary of one set of logits: accuracy, mean true-class probability, entropy and the mean
    sorted top-k probabilities p1..pk. The drift of these over epochs is what argmax accuracy hides."""
    tracker = TopkTracker(k=k)
    tracker.update(outputs, labels)
    return tracker.end_epoch()


class TopkTracker:
    """Accumulates per-batch outputs into per-epoch rows of the output distribution's shape.

    `update(logits, labels)` after each forward pass (cheap: running sums, no stored tensors),
    `end_epoch()` once per epoch; `history` is a DataFrame with epoch, n, accuracy, true_prob,
    entropy, p1..pk. `nbdebug.plots.predictions.plot_drift(history)` draws it.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = k
        self.rows: list[dict[str, float]] = []
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._n_labelled = 0
        self._correct = 0.0
        self._true_prob = 0.0
        self._entropy = 0.0
        self._topk: torch.Tensor | None = None

    def update(self, outputs: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        with torch.no_grad():
            out = outputs.detach().float()
            _check_scores(out)
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            k = min(self.k, p.shape[1])
            top = p.topk(k, dim=1).values.sum(0).cpu()
            self._topk = top if self._topk is None else self._topk + top
            self._entropy += float(-(p * logp).sum())
            self._n += p.shape[0]
            if labels is not None:
                y = _labels_of(labels, out.cpu()).to(p.device)
                self._n_labelled += len(y)
                self._correct += float((p.argmax(1) == y).sum())
                self._true_prob += float(p.gather(1, y.unsqueeze(1)).sum())

    def end_epoch(self, epoch: int | None = None) -> dict[str, float]:
        """Close the epoch: append its row to `rows` and return it."""
        if self._n == 0:
            raise NbdebugError("TopkTracker.end_epoch() called before any update()")
        row: dict[str, float] = {"epoch": len(self.rows) if epoch is None else epoch, "n": self._n}
        labelled = self._n_labelled or np.nan
        row["accuracy"] = self._correct / labelled
        row["true_prob"] = self._true_prob / labelled
        row["entropy"] = self._entropy / self._n
        for j, v in enumerate((self._topk / self._n).tolist()):
            row[f"p{j + 1}"] = v
        self.rows.append(row)
        self._reset()
        return row

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
