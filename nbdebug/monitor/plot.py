"""Figures of a watched run: loss, update/weight ratios, histograms, train/val curves.

Pure functions `Watch -> Figure` (or drawing on `ax=`); they read the Watch's data frames and never
compute statistics themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.plot import axes, new_figure

RATIO_REF = 1e-3


def loss_figure(w: Any, log: bool = False, ax: Axes | None = None) -> Figure:
    """Loss per step (thin) and smoothed per epoch (markers at each epoch's end), linear or log."""
    fig, ax = axes(ax)
    h = w.history
    h = h[np.isfinite(h["loss"])]
    if len(h):
        ax.plot(h["step"], h["loss"], lw=0.8, alpha=0.6, label="loss per step")
        ep = w.epochs
        if len(ep) > 1:
            ends = h.groupby("epoch")["step"].max()
            ep = ep[ep["epoch"].isin(ends.index)]
            ax.plot(ends.loc[ep["epoch"]].values, ep["loss"], "o-", label="mean per epoch")
        elif len(h) >= 10:
            k = max(len(h) // 20, 5)
            smooth = h["loss"].rolling(k, min_periods=1).mean()
            ax.plot(h["step"], smooth, label=f"mean of {k} steps")
        if log and (h["loss"] > 0).all():
            ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss" + (" (log)" if log else ""))
    ax.set_title("Loss")
    return fig


def ratio_figure(w: Any, ax: Axes | None = None) -> Figure:
    """Update/weight ratio per layer over sampled steps (log scale), with the 1e-3 reference."""
    fig, ax = axes(ax)
    stats = w.layer_stats()
    stats = stats[np.isfinite(stats["update_ratio"]) & (stats["update_ratio"] > 0)]
    for layer, part in stats.groupby("layer", sort=False):
        ax.plot(
            part["step"], part["update_ratio"], marker=".", lw=1, label=f"{layer} ({part['type'].iloc[0]})"
        )
    ax.axhline(RATIO_REF, color="k", ls="--", lw=1, label="1e-3 reference")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("||update|| / ||weight||")
    ax.set_title("Update/weight ratio per layer")
    ax.legend(loc="best", fontsize=7, ncol=2)
    return fig


def histogram_figure(
    w: Any, layer: str, kind: str = "activation", step: int | None = None, ax: Axes | None = None
) -> Figure:
    """Histogram of `layer`'s activations or gradients at a sampled `step` (latest by default)."""
    fig, ax = axes(ax, 5.0, 3.0)
    hists = w.histograms(layer, kind)
    if hists:
        chosen = hists[-1] if step is None else min(hists, key=lambda h: abs(h[0] - step))
        s, lo, hi, counts = chosen
        edges = np.linspace(lo, hi, len(counts) + 1)
        ax.stairs(counts, edges, fill=True, alpha=0.7)
        ax.set_title(f"{layer}: {kind}s at step {s}")
    else:
        ax.set_title(f"{layer}: no {kind} histogram")
    ax.set_xlabel(kind)
    ax.set_ylabel("count")
    return fig


def curves_figure(w: Any, ax: Axes | None = None) -> Figure:
    """Train and validation accuracy per epoch with the gap shaded, and both losses (dashed)."""
    fig, ax = axes(ax)
    ep = w.epochs
    if len(ep):
        if ep["train_acc"].notna().any():
            ax.plot(ep["epoch"], ep["train_acc"], "o-", label="train accuracy")
        if ep["val_acc"].notna().any():
            ax.plot(ep["epoch"], ep["val_acc"], "s-", label="validation accuracy")
            both = ep.dropna(subset=["train_acc", "val_acc"])
            if len(both):
                ax.fill_between(both["epoch"], both["val_acc"], both["train_acc"], alpha=0.15, label="gap")
        if ep["val_loss"].notna().any():  # losses on a second axis, dashed
            ax2 = ax.twinx()
            ax2.plot(ep["epoch"], ep["loss"], "--", color="C0", alpha=0.6, label="train loss")
            ax2.plot(ep["epoch"], ep["val_loss"], "--", color="C1", alpha=0.6, label="validation loss")
            ax2.set_ylabel("loss (dashed)")
            ax2.legend(loc="upper right", fontsize=8)
        best = getattr(w, "best_epoch", None)
        if best is not None:  # the epoch with the lowest validation loss: where early stopping would stop
            ax.axvline(best, color="C2", ls=":", lw=1.5, label=f"best epoch {best}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Train / validation")
    return fig


def dashboard_figure(w: Any) -> Figure:
    """Loss, update ratios and train/val curves side by side: the static summary of a run."""
    fig = new_figure(14, 3.4)
    axes = fig.subplots(1, 3)
    loss_figure(w, ax=axes[0])
    ratio_figure(w, ax=axes[1])
    curves_figure(w, ax=axes[2])
    return fig
