"""What every feature's plot module shares: figures outside pyplot, `ax=` handling, PNG bytes and tags.

Each feature's `plot` module holds pure functions result -> Figure named `*_figure`, each taking `ax=` to
draw into an existing axes. Figures are built with `matplotlib.figure.Figure` (never pyplot, never `plt.show()`), so library code
leaves the user's pyplot state alone, and PNGs are written without date metadata so they are
reproducible.
"""

from __future__ import annotations

import base64
import io

from matplotlib.axes import Axes
from matplotlib.figure import Figure


def new_figure(width: float = 6.0, height: float = 3.5, dpi: int = 100) -> Figure:
    """A fresh figure that is not registered with pyplot (no global state, no leak)."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def axes(ax: Axes | None, width: float = 6.0, height: float = 3.2) -> tuple[Figure, Axes]:
    """`(figure, axes)` to draw into: the caller's `ax` (and its figure), or a new figure of this size."""
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(width, height)
    return fig, fig.add_subplot()


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """PNG bytes of a figure, without the date/software metadata that makes files differ run to run."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def png_html(png: bytes, alt: str = "", style: str = "max-width:100%") -> str:
    """An <img> tag embedding PNG bytes, for static HTML reprs that render without a kernel."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{alt}" style="{style}" src="data:image/png;base64,{data}"/>'
