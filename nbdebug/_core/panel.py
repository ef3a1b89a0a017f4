"""What every ipywidgets panel shares: its static fallback, CSS classes, figures as PNG.

A panel is a thin view over a result object and computes nothing. Saved in a notebook and rendered
without a kernel (nbconvert, GitHub), a widget shows nothing; every panel therefore carries its result's
`to_text()` and `to_html()` in its own mimebundle. The CSS classes (`nbdebug-<feature>-<part>`) are what
the browser tests and user stylesheets address.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from .plot import figure_png
from .result import Result


class Panel(widgets.VBox):
    """Base of nbdebug's panels: override `static()` to return the result the panel shows."""

    def static(self) -> Result | None:
        """The result whose text and HTML stand in for the panel where widgets cannot render."""
        return None

    @staticmethod
    def tag(*pairs: tuple[widgets.Widget, str]) -> None:
        """Give each widget its CSS class: `tag((self, "nbdebug-x"), (self.button, "nbdebug-x-stop"))`."""
        for widget, css in pairs:
            widget.add_class(css)

    @staticmethod
    def png(fig: Any, dpi: int | None = None) -> bytes:
        """PNG bytes of a matplotlib figure for an `Image` widget (at the figure's own dpi unless given)."""
        return figure_png(fig, dpi=dpi)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, None)
        data = dict(data or {})
        result = self.static()
        if result is not None:
            data["text/plain"] = result.to_text()
            data["text/html"] = result.to_html()
        return (data, meta) if meta is not None else data
