"""Memory figures: bytes by role and device, top tensors, activation memory per layer, live samples.

Pure functions result -> Figure (no pyplot), each accepting `ax=` to draw into an existing axes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .._core.plot import axes
from .._core.units import fmt_bytes

if TYPE_CHECKING:  # pragma: no cover
    from .live import MemoryWatch
    from .report import MemoryReport
    from .step import StepMemory

_MIB = 2**20
_ROLE_COLOURS = {
    "parameter": "#1565c0",
    "gradient": "#ef6c00",
    "buffer": "#6a1b9a",
    "optimizer state": "#2e7d32",
    "user variable": "#00838f",
    "other": "#757575",
    "unreachable": "#c62828",
}


def _bytes_axis(axis: Any) -> None:
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt_bytes(v)))


def by_role_figure(report: MemoryReport, ax: Axes | None = None) -> Figure:
    """Horizontal stacked bars: deduplicated bytes per role, one segment per device."""
    fig, ax = axes(ax)
    table = report.by_role_and_device()
    if table.empty:
        ax.text(0.5, 0.5, "no tensors found", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    left = [0.0] * len(table.index)
    hatches = ["", "//", "..", "xx", "\\\\"]
    for i, device in enumerate(table.columns):
        values = table[device].tolist()
        colours = [_ROLE_COLOURS.get(role, "#757575") for role in table.index]
        ax.barh(list(table.index), values, left=left, color=colours, hatch=hatches[i % len(hatches)],
                edgecolor="white", label=str(device))  # fmt: skip
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    _bytes_axis(ax.xaxis)
    ax.set_xlabel("bytes (each storage counted once)")
    ax.set_title("memory by role")
    if len(table.columns) > 1:
        ax.legend(title="device", fontsize="small")
    return fig


def top_figure(report: MemoryReport, n: int = 10, ax: Axes | None = None) -> Figure:
    """The `n` largest tensors by storage bytes, coloured by role."""
    fig, ax = axes(ax, 6.0, 0.3 * n + 1.0)
    top = report.top(n)
    ax.barh(top["name"], top["storage_bytes"], color=[_ROLE_COLOURS.get(r, "#757575") for r in top["role"]])
    ax.invert_yaxis()
    _bytes_axis(ax.xaxis)
    ax.set_title(f"largest {len(top)} tensors")
    return fig


def step_figure(result: StepMemory, ax: Axes | None = None) -> Figure:
    """Bytes saved for backward per layer (bars) and bytes alive after each layer (line)."""
    fig, ax = axes(ax, 7.0, 3.4)
    frame = result.to_frame()
    frame = frame[frame["saved_bytes"].gt(0) | frame["type"].ne("")]
    x = list(range(len(frame)))
    ax.bar(x, frame["saved_bytes"], color="#1565c0", label="saved for backward")
    ax.plot(x, frame["live_after"], color="#ef6c00", marker="o", ms=3, label="alive after layer")
    ax.axhline(result.peak_bytes, color="#c62828", ls="--", lw=1, label=f"step peak ({result.peak_at})")
    ax.set_xticks(x, frame["name"], rotation=60, ha="right", fontsize="small")
    _bytes_axis(ax.yaxis)
    ax.set_title(f"activation memory, batch {result.batch_size}")
    ax.legend(fontsize="small")
    return fig


def forecast_figure(result: StepMemory, ax: Axes | None = None, upto: int | None = None) -> Figure:
    """Forecast peak vs batch size, the fitted points, the measured check and the budget line."""
    fig, ax = axes(ax, 6.0, 3.2)
    f = result.forecast
    if f is None:
        ax.text(0.5, 0.5, "no forecast", ha="center", va="center", transform=ax.transAxes)
        return fig
    top = upto or max(result.max_batch or 0, 2 * result.batch_size, *f.sizes) or 8
    top = min(top, 10 * max(result.batch_size, *f.sizes, 1) if result.max_batch is None else top)
    xs = [0, top]
    ax.plot(xs, [f.bytes_at(x) for x in xs], color="#1565c0", label=f.formula().replace("peak(N) ~ ", ""))
    ax.scatter(f.sizes, [f.fixed + p + f.batch_bytes_per_example * s for s, p in zip(f.sizes, f.step_peaks)],
               color="#1565c0", zorder=3, label=f"fit ({f.method})")  # fmt: skip
    measured = result.param_bytes + result.buffer_bytes + result.optimizer_bytes + result.batch_bytes
    ax.scatter([result.batch_size], [measured + result.peak_bytes], color="#ef6c00", marker="x", s=60,
               zorder=4, label=f"measured on {result.device}")  # fmt: skip
    if result.budget is not None:
        ax.axhline(result.budget, color="#c62828", ls="--", lw=1, label="budget")
        if result.max_batch is not None:
            ax.axvline(result.max_batch, color="#c62828", ls=":", lw=1)
    _bytes_axis(ax.yaxis)
    ax.set_xlabel("batch size N")
    ax.set_title("peak memory forecast")
    ax.legend(fontsize="x-small")
    return fig


def watch_figure(watch: MemoryWatch, ax: Axes | None = None) -> Figure:
    """Allocated and reserved bytes over time."""
    fig, ax = axes(ax, 6.0, 2.8)
    frame = watch.to_frame()
    ax.plot(frame["t"], frame["allocated"], color="#1565c0", label="allocated")
    if (frame["reserved"] != frame["allocated"]).any():
        ax.plot(frame["t"], frame["reserved"], color="#ef6c00", label="reserved")
    _bytes_axis(ax.yaxis)
    ax.set_xlabel("seconds")
    ax.set_title(watch.source)
    ax.legend(fontsize="small", loc="upper left")
    return fig
