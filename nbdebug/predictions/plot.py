"""Figures for `PredictionReport`: label vs predicted frequencies, confusion, one example's top-k,
and the drift of the output distribution over epochs (`TopkTracker.history`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.plot import axes, new_figure

if TYPE_CHECKING:
    from .report import PredictionReport

LABEL_COLOUR, PRED_COLOUR, PROB_COLOUR = "#607d8b", "#ef6c00", "#1565c0"


def frequencies_figure(report: PredictionReport, ax: Axes | None = None, top: int = 20) -> Figure:
    """Label frequency vs argmax-prediction frequency per class, with the mean predicted probability
    (the soft distribution) as dots; more than `top` classes collapse into an "other" bar."""
    f = report.top_classes(top)
    fig, ax = axes(ax, max(4.0, 0.45 * len(f) + 1.5), 3.0)
    x = np.arange(len(f))
    if f["label_freq"].notna().any():
        ax.bar(x - 0.2, f["label_freq"], 0.4, label="labels", color=LABEL_COLOUR)
        ax.bar(x + 0.2, f["pred_freq"], 0.4, label="predictions (argmax)", color=PRED_COLOUR)
    else:
        ax.bar(x, f["pred_freq"], 0.6, label="predictions (argmax)", color=PRED_COLOUR)
    ax.plot(x, f["mean_prob"], "o", color=PROB_COLOUR, label="mean probability", markersize=4)
    ax.set_xticks(x, [str(c) for c in f["class"]], rotation=45 if len(f) > 12 else 0, fontsize=8)
    ax.set_ylabel("share of examples")
    ax.set_title("label vs predicted frequency", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return fig


def confusion_figure(report: PredictionReport, ax: Axes | None = None, top: int = 20) -> Figure:
    """Row-normalized confusion matrix (true classes as rows), counts written in small matrices."""
    cm = report.confusion
    if len(cm) > top:  # keep the most frequent true classes readable
        keep = cm.sum(axis=1).sort_values(ascending=False, kind="stable").index[:top]
        cm = cm.loc[keep, keep]
    fig, ax = axes(ax, 3.6, 3.2)
    m = cm.to_numpy().astype(float)
    rows = np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(m / rows, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(cm))
    ax.set_xticks(ticks, [str(c) for c in cm.columns], fontsize=7, rotation=90 if len(cm) > 12 else 0)
    ax.set_yticks(ticks, [str(c) for c in cm.index], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion (row-normalized)", fontsize=10)
    if len(cm) <= 12:
        for i in range(len(cm)):
            for j in range(len(cm)):
                if m[i, j]:
                    colour = "white" if m[i, j] / rows[i, 0] > 0.5 else "black"
                    ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6, color=colour)
    return fig


def overview_figure(report: PredictionReport) -> Figure:
    """Frequencies beside the confusion matrix (frequencies alone when there are no labels)."""
    if report.labels is None:
        return frequencies_figure(report)
    n = len(report.top_classes())
    fig = new_figure(max(4.0, 0.45 * n + 1.5) + 3.6, 3.2)
    left, right = fig.subplots(1, 2, width_ratios=[max(4.0, 0.45 * n + 1.5), 3.6])
    frequencies_figure(report, ax=left)
    confusion_figure(report, ax=right)
    return fig


def topk_figure(report: PredictionReport, row: int, ax: Axes | None = None) -> Figure:
    """One example's top-k probabilities as horizontal bars; the true class is marked."""
    fig, ax = axes(ax, 3.2, 2.4)
    probs = report.probs[row]
    top = probs.topk(report.k)
    names = [report.classes[i] for i in top.indices.tolist()]
    label = int(report.labels[row]) if report.labels is not None else None
    colours = [
        ("#2e7d32" if i == label else PRED_COLOUR) if j == 0 else ("#2e7d32" if i == label else LABEL_COLOUR)
        for j, i in enumerate(top.indices.tolist())
    ]
    y = np.arange(len(names))[::-1]
    ax.barh(y, top.values.numpy(), color=colours)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability", fontsize=8)
    title = f"top-{report.k}"
    if label is not None:
        title += f" (true: {report.classes[label]}, p={float(probs[label]):.2f})"
    ax.set_title(title, fontsize=9)
    return fig


def example_figure(report: PredictionReport, row: int, ax: Axes | None = None) -> Figure:
    """The example's input as an image (when image-like), beside its top-k bars."""
    img = report.image(row)
    if ax is not None or img is None:
        if img is None:
            return topk_figure(report, row, ax=ax)
        fig, ax = axes(ax, 2.4, 2.4)
        _show_image(ax, img)
        return fig
    fig = new_figure(5.6, 2.4)
    left, right = fig.subplots(1, 2, width_ratios=[2.4, 3.2])
    _show_image(left, img)
    left.set_title(f"example {int(report.index[row])}", fontsize=9)
    topk_figure(report, row, ax=right)
    return fig


def _show_image(ax: Axes, img: np.ndarray) -> None:
    if img.ndim == 3:
        lo, hi = float(img.min()), float(img.max())
        ax.imshow((img - lo) / (hi - lo) if hi > lo else np.zeros_like(img))
    else:
        ax.imshow(img, cmap="gray_r")
    ax.set_xticks([])
    ax.set_yticks([])


def drift_figure(history: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Per epoch: argmax accuracy, mean true-class probability and the mean top-k probabilities; the
    distribution can sharpen towards the right class while accuracy stays flat."""
    fig, ax = axes(ax, 5.0, 3.0)
    x = history["epoch"]
    ps = [c for c in history.columns if c.startswith("p") and c[1:].isdigit()]
    for j, c in enumerate(ps):
        ax.plot(x, history[c], color=PROB_COLOUR, alpha=1.0 - 0.7 * j / max(len(ps), 1), lw=1, label=c)
    if history["accuracy"].notna().any():
        ax.plot(x, history["accuracy"], "k-", lw=2, label="accuracy")
        ax.plot(x, history["true_prob"], "--", color="#2e7d32", lw=2, label="p(true class)")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.set_title("output distribution over training", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    return fig
