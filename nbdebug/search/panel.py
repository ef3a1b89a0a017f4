"""The live search panel: progress bar, Stop button, table of trials, score-vs-parameter scatter with the
best trial marked, and the findings when the search ends.

It is an observer of `nbdebug.search` (on_start / on_trial_start / on_trial_end / on_end) and computes
nothing: it renders the `SearchResult` it is handed. A search that runs in the cell (the default) blocks
the kernel, so the frontend's button clicks wait until it ends: there the kernel's interrupt (the stop
button in the toolbar) stops the search and keeps the finished trials. `background=True` runs the search
in a thread so the panel's Stop button works while trials run.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from .._core.findings import findings_html
from .._core.panel import Panel
from .plot import search_png
from .result import SearchResult, Trial, trials_html
from .run import search

PLOT_EVERY_S = 1.0  # redraw the scatter at most this often while trials run (a PNG costs ~0.1 s)


class SearchPanel(Panel):
    """Live view of a random search. Pass it to `nbdebug.search(..., observers=[panel])`, or call `run`."""

    def __init__(self, background: bool = False) -> None:
        self.result: SearchResult | None = None
        self.background = background
        self._stop_early = False
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self._last_plot = 0.0
        self.header = w.HTML("<b>Random search</b>: waiting to start")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="trials", bar_style="info",
                                      layout=w.Layout(width="420px"))  # fmt: skip
        self.stop = w.Button(
            description="Stop", icon="stop", button_style="danger", layout=w.Layout(width="90px")
        )
        self.stop.disabled = not background
        self.stop.tooltip = (
            "stop after the running trial"
            if background
            else "the search runs in this cell: interrupt the kernel to stop it (finished trials are kept); "
            "run with background=True / --background for a live Stop button"
        )
        self.table = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(max_width="980px", display="none"))
        self.findings = w.HTML()
        self.tag(
            (self, "nbdebug-search"), (self.header, "nbdebug-search-header"),
            (self.progress, "nbdebug-search-progress"), (self.stop, "nbdebug-search-stop"),
            (self.table, "nbdebug-search-table"), (self.plot, "nbdebug-search-plot"),
            (self.findings, "nbdebug-search-findings"),
        )  # fmt: skip
        self.stop.on_click(self._on_stop)
        super().__init__(
            [self.header, w.HBox([self.progress, self.stop]), self.findings, self.plot, self.table]
        )

    # -- observer interface ---------------------------------------------------------------------------
    def on_start(self, result: SearchResult) -> None:
        self.result = result
        if self._stop_early:  # Stop clicked before the thread started
            result.request_stop()
        self.progress.max = result.planned
        self.progress.value = 0
        self._last_plot = time.monotonic()  # first scatter after PLOT_EVERY_S: short searches draw it once
        self._render(plot=False)

    def on_trial_start(self, result: SearchResult, trial: Trial) -> None:
        self._render(plot=False)

    def on_trial_end(self, result: SearchResult, trial: Trial) -> None:
        self.progress.value = sum(t.status in ("ok", "failed", "stopped") for t in result.trials)
        due = time.monotonic() - self._last_plot >= PLOT_EVERY_S
        self._render(plot=due)

    def on_end(self, result: SearchResult) -> None:
        self.stop.disabled = True
        self.stop.description = "Stopped" if result.stopped_by else "Done"
        self.stop.button_style = ""
        self.stop.icon = "check" if not result.stopped_by else "stop"
        failed = bool(result.failed) and not result.completed
        self.progress.bar_style = "danger" if failed else ("warning" if result.stopped_by else "success")
        self._render(plot=True)
        self.findings.value = findings_html(result.findings, "No findings about the search.")

    # -- rendering --------------------------------------------------------------------------------------
    def _render(self, plot: bool) -> None:
        r = self.result
        if r is None:
            return
        running = next((t for t in r.trials if t.status == "running"), None)
        text = html.escape(r.summary()).replace("\n", "<br>")
        if running is not None:
            params = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in running.params.items()
            )
            text += f"<br><i>running trial {running.index}: {html.escape(params)}</i>"
        self.header.value = f'<div class="nbdebug-search-summary">{text}</div>'
        self.table.value = (
            f'<div style="max-height:340px;overflow-y:auto">{trials_html(r, max_rows=1000)}</div>'
        )
        if plot and r.completed:
            self.plot.value = search_png(r)
            self.plot.layout.display = None
            self._last_plot = time.monotonic()

    def _on_stop(self, _: Any = None) -> None:
        self._stop_early = True
        if self.result is not None:
            self.result.request_stop()
        self.stop.description = "Stopping"
        self.stop.disabled = True

    # -- running ------------------------------------------------------------------------------------------
    def run(
        self, train_fn: Callable[..., Any], space: Mapping[str, Any], **kwargs: Any
    ) -> SearchResult | None:
        """Run `nbdebug.search` with this panel observing it and return its result; a background panel
        (`SearchPanel(background=True)`) starts a thread and returns None at once: `wait()` gives the result."""
        observers = [self, *kwargs.pop("observers", ())]
        if not self.background:
            return search(train_fn, space, observers=observers, **kwargs)

        def target() -> None:
            try:
                search(train_fn, space, observers=observers, **kwargs)
            except Exception as e:  # shown in the panel: nobody else would see a thread's exception
                self.error = f"{type(e).__name__}: {e}"
                self.header.value = (
                    f'<div style="color:#c62828"><b>search failed:</b> {html.escape(self.error)}</div>'
                )

        self.thread = threading.Thread(target=target, name="nbdebug-search", daemon=True)
        self.thread.start()
        return None

    def wait(self, timeout: float | None = None) -> SearchResult | None:
        """Block until a background search ends; its result (None if it failed: see `.error`)."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.result

    def static(self) -> SearchResult | None:
        return self.result


def live_search(
    train_fn: Callable[..., Any],
    space: Mapping[str, Any],
    trials: int = 20,
    seed: int = 0,
    *,
    background: bool = False,
    display: Callable[[Any], None] | None = None,
    **kwargs: Any,
) -> SearchPanel:
    """Display a `SearchPanel` and run the search under it; returns the panel (`.result`, `.wait()`)."""
    panel = SearchPanel(background=background)
    if display is None:
        from IPython.display import display
    display(panel)
    panel.run(train_fn, space, trials=trials, seed=seed, **kwargs)
    return panel
