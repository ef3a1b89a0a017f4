"""Figures for `FilterView`: the filter grid and the feature maps of one example."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.figure import Figure

from . import new_figure

if TYPE_CHECKING:
    from ..filters import FilterView

CMAP = "RdBu_r"  # diverging: sign visible, zero white


def _grid(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = cols or min(n, max(4, math.ceil(math.sqrt(n * 1.6))))
    return math.ceil(n / cols), cols


def plot_filters(
    view: FilterView,
    channel: int | None = None,
    normalize: str | None = None,
    max_filters: int = 64,
    cell: float = 0.8,
) -> Figure:
    """Grid of the first `max_filters` filters; RGB for 3-channel 2-d filters, else a diverging map."""
    imgs = view.images(channel=channel, normalize=normalize)[:max_filters]
    n = len(imgs)
    rows, cols = _grid(n)
    h, w = imgs.shape[1], imgs.shape[2]
    aspect = w / h
    fig = new_figure(max(2.5, cols * cell * min(aspect, 4)), max(1.0, rows * cell) + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    rgb = imgs.ndim == 4
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        if rgb:
            ax.imshow(imgs[i], interpolation="nearest")
        else:
            ax.imshow(imgs[i], cmap=CMAP, vmin=-1, vmax=1, interpolation="nearest")
        for s in ax.spines.values():
            s.set_linewidth(0.3)
    more = f" (first {n} of {view.n_filters})" if view.n_filters > n else ""
    fig.suptitle(f"{view.layer} ({view.type}) filters{more}", fontsize=9)
    return fig


def _map_images(maps: torch.Tensor) -> np.ndarray:
    """(C, *spatial) activations -> (C, H, W) images: 1-d maps as 1-row strips, 3-d as middle slice."""
    if maps.dim() == 2:
        return maps.unsqueeze(1).numpy()
    if maps.dim() == 4:
        return maps[:, maps.shape[1] // 2].numpy()
    return maps.numpy()


def plot_feature_maps(view: FilterView, max_maps: int = 64, cell: float = 0.8) -> Figure:
    """The layer's output channels for the view's example, each on its own colour scale, with the
    example's input first."""
    if view.feature_maps is None:
        raise ValueError("this FilterView has no feature maps: pass data= to nbdebug.filters")
    maps = _map_images(view.feature_maps)[:max_maps]
    n = len(maps) + 1
    rows, cols = _grid(n)
    fig = new_figure(max(2.5, cols * cell), rows * cell + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    x = view.example_input
    if x is not None and x.dim() == 3 and x.shape[0] in (1, 3):
        img = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
        if img.ndim == 3:
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
        axes[0].imshow(img, cmap="gray_r" if img.ndim == 2 else None)
        axes[0].set_title("input", fontsize=7)
    else:
        axes[0].set_axis_off()
    for i, m in enumerate(maps):
        axes[i + 1].imshow(m, cmap="viridis", aspect="auto" if m.shape[0] == 1 else "equal")
        axes[i + 1].set_title(str(i), fontsize=6)
    for ax in axes[n:]:
        ax.set_axis_off()
    fig.suptitle(f"{view.layer} ({view.type}) feature maps, example {view.example}", fontsize=9)
    return fig
