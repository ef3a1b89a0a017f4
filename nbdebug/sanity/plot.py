"""Figures for the sanity checks: the overfit loss curve, per-layer gradient norms, gradcheck errors."""

from __future__ import annotations

import math
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.plot import new_figure


def overfit_figure(result: Any, log: bool = False, ax: Axes | None = None) -> Figure:
    """Loss per epoch (epochs, not iterations, as CS231n advises), the target line, and accuracy."""
    if ax is None:
        fig = new_figure(6.0, 3.2)
        fig.set_layout_engine(None)  # fixed margins: redrawn live, and constrained layout costs 2x
        fig.subplots_adjust(left=0.11, right=0.88, bottom=0.15, top=0.9)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    rows = result.rows
    epochs = [r["epoch"] for r in rows]
    losses = [r["loss"] for r in rows]
    ax.plot(epochs, losses, color="#1565c0", lw=1.8, label="loss")
    if math.isfinite(result.target):
        ax.axhline(result.target, color="#2e7d32", ls="--", lw=1, label=f"target {result.target:.3g}")
    positive = [v for v in losses if v > 0 and math.isfinite(v)]
    if log and positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" + (" (log)" if log else ""))
    ax.set_xlim(0.5, max(epochs[-1] if epochs else 1, 2) + 0.5)
    ax.grid(alpha=0.3)
    accs = [r["accuracy"] for r in rows]
    if any(isinstance(a, float) and math.isfinite(a) for a in accs):
        ax2 = ax.twinx()
        ax2.plot(epochs, accs, color="#ef6c00", lw=1.2, alpha=0.8, label="accuracy")
        ax2.set_ylim(-0.02, 1.02)
        ax2.set_ylabel("accuracy", color="#ef6c00")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"overfit {result.n} examples: {result.optimizer}", fontsize=9)
    return fig


def gradient_norms_figure(report: Any, ax: Axes | None = None) -> Figure:
    """Per-parameter gradient norms after one backward pass (log scale); missing gradients in red."""
    frame = report.gradients
    if ax is None:
        fig = new_figure(6.0, max(2.0, 0.28 * len(frame) + 1))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    names = list(frame["name"])[::-1]
    norms = [v if v == v and v > 0 else 0.0 for v in frame["grad_norm"]][::-1]
    colours = ["#1565c0" if h else "#c62828" for h in frame["has_grad"]][::-1]
    ax.barh(names, norms, color=colours)
    if any(v > 0 for v in norms):
        ax.set_xscale("log")
    ax.set_xlabel("gradient norm (red: no gradient)")
    ax.tick_params(axis="y", labelsize=8)
    return fig


def gradcheck_figure(result: Any, ax: Axes | None = None) -> Figure:
    """Max relative error per tensor against the CS231n bands (1e-7 good, 1e-4, 1e-2 wrong)."""
    frame = result.rows
    if ax is None:
        fig = new_figure(6.0, max(2.0, 0.3 * len(frame) + 1))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    errs = [max(v, 1e-16) if v == v else 1e-16 for v in frame["max_rel_error"]][::-1]
    ax.barh(list(frame["tensor"])[::-1], errs, color="#1565c0")
    ax.set_xscale("log")
    for x, c in ((1e-7, "#2e7d32"), (1e-4, "#ef6c00"), (1e-2, "#c62828")):
        ax.axvline(x, color=c, ls="--", lw=1)
    ax.set_xlabel("max relative error |a - n| / max(|a|, |n|)")
    ax.tick_params(axis="y", labelsize=8)
    return fig
