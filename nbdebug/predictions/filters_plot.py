"""Figures for `FilterView`: the filter grid and the feature maps of one example."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from .._core.plot import new_figure

if TYPE_CHECKING:
    from .filters import FilterView

CMAP = "RdBu_r"  # diverging: sign visible, zero white


def _grid(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = cols or min(n, max(4, math.ceil(math.sqrt(n * 1.6))))
    return math.ceil(n / cols), cols


def mosaic(imgs: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W) or (N, H, W, 3) images into one array with NaN padding between them.

    One image on one axes renders ~50x faster than one axes per filter, so the panel stays interactive
    when the user flips channels or normalization."""
    n, h, w = imgs.shape[:3]
    rows, cols = _grid(n, cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *imgs.shape[3:]), np.nan)
    for i in range(n):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = imgs[i]
    return out


def filters_figure(
    view: FilterView,
    channel: int | None = None,
    normalize: str | None = None,
    max_filters: int = 64,
    cell: float = 0.8,
) -> Figure:
    """All filters (the first `max_filters`) as one tiled image: RGB for 3-channel 2-d filters, else a
    diverging colour map (sign visible, zero white); grey lines separate the filters."""
    imgs = view.images(channel=channel, normalize=normalize)[:max_filters]
    n = len(imgs)
    rows, cols = _grid(n)
    h, w = imgs.shape[1], imgs.shape[2]
    tiled = mosaic(imgs)
    aspect = min(w / h, 4)
    fig = new_figure(max(2.5, cols * cell * aspect), max(1.2, rows * cell) + 0.4)
    ax = fig.add_subplot()
    if imgs.ndim == 4:
        rgb = np.where(np.isnan(tiled), 0.85, tiled)  # light grey separators
        ax.imshow(rgb, interpolation="nearest")
    else:
        cmap = matplotlib.colormaps[CMAP].with_extremes(bad="#d9d9d9")
        ax.imshow(np.ma.masked_invalid(tiled), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    more = f" (first {n} of {view.n_filters})" if view.n_filters > n else ""
    ax.set_title(f"{view.layer} ({view.type}) filters{more}, row-major", fontsize=9)
    return fig


def _map_images(maps: torch.Tensor) -> np.ndarray:
    """(C, *spatial) activations -> (C, H, W) images: 1-d maps as 1-row strips, 3-d as middle slice."""
    if maps.dim() == 2:
        return maps.unsqueeze(1).numpy()
    if maps.dim() == 4:
        return maps[:, maps.shape[1] // 2].numpy()
    return maps.numpy()


def feature_maps_figure(view: FilterView, max_maps: int = 64, cell: float = 0.8) -> Figure:
    """The example's input beside the layer's output channels, tiled, each channel on its own scale."""
    if view.feature_maps is None:
        raise ValueError("this FilterView has no feature maps: pass data= to nbdebug.filters")
    maps = _map_images(view.feature_maps)[:max_maps].astype(float)
    flat = maps.reshape(len(maps), -1)
    lo, hi = flat.min(1)[:, None, None], flat.max(1)[:, None, None]
    maps = np.where(hi > lo, (maps - lo) / np.where(hi > lo, hi - lo, 1), 0.0)
    tiled = mosaic(maps)
    rows, cols = _grid(len(maps))
    h, w = maps.shape[1:]
    aspect = w / h if h > 1 else 8
    fig = new_figure(max(3.0, cols * cell * min(aspect, 4) + 1.6), max(1.6, rows * cell + 0.4))
    left, right = fig.subplots(1, 2, width_ratios=[1, max(cols * min(aspect, 4) / 1.5, 1)])
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    x = view.example_input
    if x is not None and x.dim() == 3 and x.shape[0] in (1, 3):
        img = x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()
        if img.ndim == 3:
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
        left.imshow(img, cmap="gray_r" if img.ndim == 2 else None)
        left.set_title("input", fontsize=8)
    else:
        left.set_axis_off()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    right.imshow(np.ma.masked_invalid(tiled), cmap=cmap, vmin=0, vmax=1, aspect="auto" if h == 1 else "equal",
                 interpolation="nearest")  # fmt: skip
    right.set_title(f"{view.layer} ({view.type}) feature maps, example {view.example}", fontsize=9)
    return fig
