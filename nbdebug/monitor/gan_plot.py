"""Figures of a watched GAN: losses, D's probabilities, gradient norms, update ratios, diversity, and
the sample grid from the fixed noise batch.

Pure functions `GanWatch -> Figure` (or drawing on `ax=`); they read `history` and `frames` and never
compute statistics. Per-layer update ratios of one network reuse `monitor/plot.py`'s `ratio_figure`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.plot import axes, new_figure
from .plot import RATIO_REF, ratio_figure

D_COLOUR, G_COLOUR = "#1565c0", "#c62828"


def _plot(ax: Axes, h: Any, col: str, **kw: Any) -> None:
    part = h[np.isfinite(h[col].astype(float))]
    if len(part):
        ax.plot(part["step"], part[col], **kw)


def losses_figure(g: Any, ax: Axes | None = None) -> Figure:
    """D loss and G loss per G step."""
    fig, ax = axes(ax, 5.0, 3.0)
    h = g.history
    _plot(ax, h, "d_loss", color=D_COLOUR, lw=1, label="D loss")
    _plot(ax, h, "g_loss", color=G_COLOUR, lw=1, label="G loss")
    ax.set_xlabel("G step")
    ax.set_title("Losses")
    if len(h):
        ax.legend(loc="best", fontsize=7)
    return fig


def probabilities_figure(g: Any, ax: Axes | None = None) -> Figure:
    """D(x) and D(G(z)) as probabilities, with the 0.05/0.95 band where D has won outright."""
    fig, ax = axes(ax, 5.0, 3.0)
    h = g.history
    _plot(ax, h, "d_real", color=D_COLOUR, lw=1, label="D(x) real")
    _plot(ax, h, "d_fake", color=G_COLOUR, lw=1, label="D(G(z)) in D step")
    _plot(ax, h, "d_fake_g", color=G_COLOUR, lw=1, ls=":", label="D(G(z)) in G step")
    ax.axhline(0.5, color="k", lw=0.6, ls="--")
    ax.axhspan(0.95, 1.0, color=D_COLOUR, alpha=0.08)
    ax.axhspan(0.0, 0.05, color=G_COLOUR, alpha=0.08)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("G step")
    ax.set_title("D's output (probability)")
    if len(h):
        ax.legend(loc="best", fontsize=7)
    return fig


def gradients_figure(g: Any, ax: Axes | None = None) -> Figure:
    """Total gradient norm of D and of G at each of their steps (log scale)."""
    fig, ax = axes(ax, 5.0, 3.0)
    h = g.history
    _plot(ax, h, "d_grad_norm", color=D_COLOUR, lw=1, label="D")
    _plot(ax, h, "g_grad_norm", color=G_COLOUR, lw=1, label="G")
    if len(h) and (h[["d_grad_norm", "g_grad_norm"]] > 0).any().any():
        ax.set_yscale("log")
    ax.set_xlabel("G step")
    ax.set_title("Gradient norm")
    if len(h):
        ax.legend(loc="best", fontsize=7)
    return fig


def ratios_figure(g: Any, ax: Axes | None = None) -> Figure:
    """Median update/weight ratio over layers of D and of G on sampled steps, against 1e-3."""
    fig, ax = axes(ax, 5.0, 3.0)
    h = g.history
    _plot(ax, h, "d_ratio", color=D_COLOUR, marker=".", lw=1, label="D")
    _plot(ax, h, "g_ratio", color=G_COLOUR, marker=".", lw=1, label="G")
    ax.axhline(RATIO_REF, color="k", ls="--", lw=0.8, label="1e-3")
    ax.set_yscale("log")
    ax.set_xlabel("G step")
    ax.set_title("Update / weight ratio")
    ax.legend(loc="best", fontsize=7)
    return fig


def layer_ratios_figure(g: Any, net: str = "D", ax: Axes | None = None) -> Figure:
    """Per-layer update/weight ratios of one network (the training monitor's figure)."""
    fig = ratio_figure(g.net(net), ax=ax)
    (ax or fig.axes[0]).set_title(
        f"{'Discriminator' if net.upper() == 'D' else 'Generator'}: update/weight ratio per layer"
    )
    return fig


def diversity_figure(g: Any, ax: Axes | None = None, threshold: float = 0.1) -> Figure:
    """Spread of G's training batch and of its fixed-noise samples, relative to the real data's."""
    fig, ax = axes(ax, 5.0, 3.0)
    h = g.history
    _plot(ax, h, "diversity", color=G_COLOUR, marker="o", ms=3, lw=1, label="G's training batch")
    _plot(
        ax,
        h,
        "sample_diversity",
        color="#6a1b9a",
        marker="s",
        ms=3,
        lw=1,
        ls=":",
        label="fixed-noise samples",
    )
    ax.axhline(1.0, color="k", lw=0.6, ls="--", label="real data")
    ax.axhline(threshold, color=G_COLOUR, lw=0.6, ls="--", label=f"collapse ({threshold:.0%})")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("G step")
    ax.set_title("Diversity (mean pairwise distance / real's)")
    ax.legend(loc="best", fontsize=7)
    return fig


def dashboard_figure(g: Any) -> Figure:
    """The five curves side by side: the static summary of a GAN run."""
    fig = new_figure(15, 3.0)
    axes = fig.subplots(1, 5)
    losses_figure(g, ax=axes[0])
    probabilities_figure(g, ax=axes[1])
    gradients_figure(g, ax=axes[2])
    ratios_figure(g, ax=axes[3])
    diversity_figure(g, ax=axes[4])
    return fig


def _as_images(x: torch.Tensor) -> np.ndarray | None:
    """(N, H, W) or (N, H, W, 3) arrays in [0, 1] for image-like samples; None for points/vectors."""
    if x.dim() == 4 and x.shape[1] in (1, 3):
        imgs = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    elif x.dim() == 3:
        imgs = x
    elif x.dim() == 2 and x.shape[1] > 3 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:
        side = math.isqrt(x.shape[1])
        imgs = x.reshape(-1, side, side)
    else:
        return None
    a = imgs.numpy().astype(float)
    lo, hi = (-1.0, 1.0) if a.min() >= -1.001 and a.max() <= 1.001 and a.min() < 0 else (a.min(), a.max())
    return np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)


def samples_figure(
    g: Any, index: int = -1, ax: Axes | None = None, max_images: int = 64, compact: bool = False
) -> Figure:
    """G's output on the fixed noise batch at frame `index` (latest by default): an image grid, or a
    scatter over the real data for 2-D samples."""
    fig, ax = axes(ax, 4.0, 4.0)
    if not g.frames:
        ax.set_title("no samples yet")
        ax.axis("off")
        return fig
    frame = g.frames[index]
    x = frame.samples
    div = f", diversity {frame.diversity:.0%}" if math.isfinite(frame.diversity) else ""
    imgs = _as_images(x)
    if imgs is not None:
        imgs = imgs[:max_images]
        n = len(imgs)
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        h, w = imgs.shape[1:3]
        pad = 1
        canvas = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, *imgs.shape[3:]))
        for i, im in enumerate(imgs):
            r, c = divmod(i, cols)
            canvas[
                pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w
            ] = im
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.axis("off")
    else:
        pts = x.reshape(x.shape[0], -1).numpy()
        real = getattr(g, "real_samples", None)
        if real is not None and real.reshape(real.shape[0], -1).shape[1] == pts.shape[1]:
            r = real.reshape(real.shape[0], -1).numpy()
            ax.scatter(
                r[:, 0], r[:, 1] if r.shape[1] > 1 else np.zeros(len(r)), s=6, c="#9e9e9e", label="real"
            )
        ax.scatter(
            pts[:, 0], pts[:, 1] if pts.shape[1] > 1 else np.zeros(len(pts)), s=8, c=G_COLOUR, label="G(z)"
        )
        ax.legend(loc="best", fontsize=7)
        ax.set_aspect("equal", adjustable="datalim")
    if compact:
        ax.set_title(f"G step {frame.step}{div}", fontsize=8)
    else:
        ax.set_title(f"G(fixed noise) after G step {frame.step}{div}", fontsize=9)
    return fig


def frames_figure(g: Any, n: int = 6) -> Figure:
    """Up to `n` frames of the sample grid from first to latest: progress or collapse at a glance."""
    frames = g.frames
    picks = sorted({round(i * (len(frames) - 1) / max(n - 1, 1)) for i in range(n)}) if frames else []
    fig = new_figure(2.6 * max(len(picks), 1), 2.8)
    axes = fig.subplots(1, max(len(picks), 1), squeeze=False)[0]
    for ax, i in zip(axes, picks):
        samples_figure(g, index=i, ax=ax, max_images=36, compact=True)
    if not picks:
        axes[0].axis("off")
        axes[0].set_title("no samples yet")
    return fig


def curves_figure(g: Any) -> Figure:
    """Losses, D's probabilities, gradient norms and diversity in a 2x2 grid (the live panel's view)."""
    fig = new_figure(8.5, 5.2)
    axes = fig.subplots(2, 2)
    losses_figure(g, ax=axes[0, 0])
    probabilities_figure(g, ax=axes[0, 1])
    gradients_figure(g, ax=axes[1, 0])
    diversity_figure(g, ax=axes[1, 1])
    return fig
