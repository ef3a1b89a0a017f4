"""`nbdebug.predictions`: run the classifier over the data in eval mode and build the report; reading the
class scores out of whatever the model returns, and the labels out of whatever the data holds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._core.classes import collapsed, rare_classes, skewed, underpredicted, vocabulary
from .._core.data import iter_batches, model_device, split_batch, to_device
from .._core.errors import NbdebugError, describe
from .._core.findings import Finding
from .._core.hooks import preserved
from .report import NEAR_UNIFORM, PredictionReport, _weights_literal

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
    counts = f["label_count"].to_numpy()
    pred_freq, label_freq = f["pred_freq"].to_numpy(), f["label_freq"].to_numpy()
    mode = collapsed(pred_freq.tolist(), label_freq.tolist()) if report.n_classes >= 2 else None
    imbalance: Finding | None = None
    if skewed(counts.tolist()):
        big = int(np.argmax(counts))
        small = int(np.argmin(np.where(counts > 0, counts, np.inf)))
        ratio = counts[big] / counts[small]
        under = underpredicted(pred_freq.tolist(), label_freq.tolist(), rare_classes(counts.tolist()))
        weights = report.class_weights
        literal = _weights_literal(weights)
        if under:
            j = min(under, key=lambda c: counts[c])
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
        if mode is not None:
            tail += " (see predicts-mode: the skew is its likely cause)"
        vocab = vocabulary(report.n_classes, counts.tolist())
        if vocab:
            tail += "; with this many classes (a vocabulary?) skewed frequencies are the data's nature"
        imbalance = Finding(
            "class-imbalance",
            "warning" if under and mode is None and not vocab else "info",
            f"class {names[big]!r} has {int(counts[big])} labels and class {names[small]!r} has "
            f"{int(counts[small])} ({ratio:.0f}:1){tail}",
            f"weight the loss by inverse class frequency: nn.CrossEntropyLoss(weight={literal}), "
            f"or use nbdebug.FocalLoss(gamma=2.0, alpha={literal}) to focus on the hard examples",
            evidence={
                "label_counts": counts.tolist(),
                "ratio": float(ratio),
                "class_weights": weights,
                "underpredicted": [names[i] for i in under],
            },
        )
    if mode is not None:
        top, pf, lf = mode
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
            f"the labels are skewed (see class-imbalance): weight the loss "
            f"(nn.CrossEntropyLoss(weight={_weights_literal(report.class_weights)})) or use focal loss"
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
