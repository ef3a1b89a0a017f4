"""Score against each searched parameter, on the parameter's own scale (log axes for log ranges).

The range bounds are drawn so a best value at the edge is visible at a glance; the best trial is a star;
failed trials are red crosses along the bottom (they have no score, but where they sit in the range
is the evidence).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from .._core.plot import figure_png, new_figure

if TYPE_CHECKING:
    from .result import SearchResult


def param_axes(result: SearchResult, name: str, ax: Axes) -> Axes:
    """Scatter of score vs parameter `name` on `ax`."""
    dist = result.space[name]
    done = [t for t in result.trials if t.status == "ok"]
    failed = [t for t in result.trials if t.status == "failed"]
    best = result.best

    if dist.numeric:

        def xs(trials):
            return [t.params[name] for t in trials]

        if dist.log:
            ax.set_xscale("log")
        lo, hi = float(dist.low), float(dist.high)
        pad = (hi / lo) ** 0.04 if dist.log else 0.04 * (hi - lo)
        ax.set_xlim((lo / pad, hi * pad) if dist.log else (lo - pad, hi + pad))
        for bound in (lo, hi):
            ax.axvline(bound, color="#999", lw=0.8, ls="--")
    else:
        options = list(dist.options)

        def xs(trials):
            return [options.index(t.params[name]) + _jitter(t.index) for t in trials]

        ax.set_xticks(range(len(options)), [str(o) for o in options])
        ax.set_xlim(-0.5, len(options) - 0.5)

    ax.scatter(xs(done), [t.score for t in done], s=18, color="#1565c0", alpha=0.75, label="trial")
    if best is not None:
        ax.scatter(xs([best]), [best.score], s=160, marker="*", color="#2e7d32", zorder=3, label="best")
    if failed:
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(xs(failed), [0.02] * len(failed), transform=trans, marker="x", color="#c62828",
                   s=28, label="failed", clip_on=False)  # fmt: skip
    ax.set_xlabel(name + (" (log scale)" if dist.log else ""))
    ax.grid(True, alpha=0.3)
    return ax


def _jitter(i: int) -> float:
    return 0.15 * math.sin(12.9898 * (i + 1))  # deterministic spread of points sharing a category


def search_figure(result: SearchResult, cols: int = 3) -> Figure:
    """One panel per searched parameter, sharing the score axis."""
    names = list(result.space)
    cols = max(1, min(cols, len(names)))
    rows = math.ceil(len(names) / cols)
    fig = new_figure(3.2 * cols + 0.4, 2.6 * rows + 0.3)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for i, (name, ax) in enumerate(zip(names, axes)):
        param_axes(result, name, ax)
        if i % cols == 0:
            better = "higher" if result.mode == "max" else "lower"
            ax.set_ylabel(f"{result.score_name} ({better} is better)")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=7, loc="best")
    return fig


def search_png(result: SearchResult, dpi: int = 80) -> bytes:
    return figure_png(search_figure(result), dpi=dpi)
