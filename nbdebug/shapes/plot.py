"""Feature-map images for one step of a trace: what the layer did to the actual input."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.plot import figure_png, new_figure


def feature_maps_figure(step, max_channels: int = 8, fig: Figure | None = None) -> Figure | None:
    """A row of the first channels of `step`'s output (first example), or None when not image-like."""
    preview = getattr(step, "preview", None)
    if preview is None:
        return None
    n = min(max_channels, preview.shape[0])
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    if fig is None:
        fig = new_figure(max(1.3 * cols, 4.5), 1.45 * rows + 0.3, dpi=80)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            _channel(ax, preview[i].numpy(), f"ch {i}")
    of = getattr(step, "preview_of", "output")
    shapes = step.input_shapes if of == "input" else step.output_shapes
    total = shapes[0][1] if shapes and len(shapes[0]) > 1 else n
    fig.suptitle(f"{step.name} {of}: first {n} of {total} channels (example 0)", fontsize=9)
    return fig


def _channel(ax: Axes, img, title: str) -> None:
    ax.imshow(img, cmap="viridis", interpolation="nearest")
    ax.set_title(title, fontsize=7)


def feature_maps_png(step, max_channels: int = 8) -> bytes | None:
    fig = feature_maps_figure(step, max_channels)
    return None if fig is None else figure_png(fig)
