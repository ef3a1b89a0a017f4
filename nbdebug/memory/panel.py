"""Memory panel: totals and chart, a sortable top-N table, Refresh, the GPU section and a live watch.

The panel is a view: it shows a `MemoryReport` and, on Refresh, asks `refresh()` (a call into the core
API supplied by whoever built the panel) for a new one. It never computes statistics itself.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .._core.findings import findings_html
from .._core.panel import Panel
from .._core.throttle import Throttle
from .._core.units import fmt_bytes
from .live import MemoryWatch
from .plot import by_role_figure, watch_figure
from .report import ROLES, UNREACHABLE, MemoryReport, gpu_html

SORTABLE = ("name", "role", "shape", "dtype", "device", "bytes", "storage_bytes")
_NUMERIC = {"bytes", "storage_bytes", "nelement", "element_size"}


def _totals_html(report: MemoryReport) -> str:
    def table(series, title: str) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td style='text-align:right'>{fmt_bytes(v)}</td></tr>"
            for k, v in series.items()
        )
        return f"<table class='nbdebug-memory-totals'><tr><th>{title}</th><th>bytes</th></tr>{rows}</table>"

    return (
        "<div style='display:flex;gap:2em'>"
        + table(report.by_role(), "role")
        + table(report.by_device(), "device")
        + table(report.by_dtype(), "dtype")
        + "</div>"
    )


class MemoryPanel(Panel):
    """Interactive view of a `MemoryReport`."""

    def __init__(
        self,
        report: MemoryReport,
        refresh: Callable[[], MemoryReport] | None = None,
        n: int = 20,
        watch_seconds: float = 60.0,
        watch_interval: float = 0.1,
    ) -> None:
        self.report = report
        self._refresh_fn = refresh
        self.sort_by = "storage_bytes"
        self.ascending = False
        self.watch: MemoryWatch | None = None
        self._watch_seconds = watch_seconds
        self._watch_interval = watch_interval
        self.live_panel: WatchPanel | None = None

        self.headline = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh", disabled=refresh is None)
        self.watch_toggle = w.ToggleButton(description="Watch", icon="eye", value=False)
        self.top_n = w.Dropdown(options=[10, 20, 50, 200], value=n if n in (10, 20, 50, 200) else 20,
                                description="top", layout=w.Layout(width="130px"))  # fmt: skip
        self.role = w.Dropdown(options=["all", *ROLES, UNREACHABLE], value="all", description="role",
                               layout=w.Layout(width="220px"))  # fmt: skip
        self.sort_buttons = {
            col: w.Button(description=col, layout=w.Layout(width="auto"), tooltip=f"sort by {col}")
            for col in SORTABLE
        }
        self.chart = w.Image(format="png")
        self.totals = w.HTML()
        self.table = w.HTML()
        self.gpu = w.HTML()
        self.findings = w.HTML()
        self.live_box = w.VBox([])

        self.tag(
            (self, "nbdebug-memory-panel"),
            (self.headline, "nbdebug-memory-headline"),
            (self.refresh_button, "nbdebug-memory-refresh"),
            (self.watch_toggle, "nbdebug-memory-watch"),
            (self.table, "nbdebug-memory-table"),
            (self.totals, "nbdebug-memory-totals-box"),
            (self.gpu, "nbdebug-memory-gpu-box"),
            (self.top_n, "nbdebug-memory-topn"),
            (self.role, "nbdebug-memory-role"),
        )
        for col, button in self.sort_buttons.items():
            button.add_class("nbdebug-memory-sort")
            button.add_class(f"nbdebug-memory-sort-{col.replace('_', '-')}")
            button.on_click(lambda _, c=col: self.sort(c))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.watch_toggle.observe(self._toggle_watch, names="value")
        self.top_n.observe(lambda _: self._show_table(), names="value")
        self.role.observe(lambda _: self._show_table(), names="value")

        controls = w.HBox([self.refresh_button, self.watch_toggle, self.top_n, self.role])
        sort_row = w.HBox([w.HTML("sort:"), *self.sort_buttons.values()])
        super().__init__(
            [self.headline, controls, self.chart, self.totals, sort_row, self.table, self.gpu, self.findings,
             self.live_box]
        )  # fmt: skip
        self.show(report)

    # ------------------------------------------------------------------ report
    def show(self, report: MemoryReport) -> None:
        self.report = report
        self.headline.value = f"<b>Memory</b>: {html.escape(report.summary())}"
        self.chart.value = self.png(by_role_figure(report), dpi=100)
        self.totals.value = _totals_html(report)
        self.gpu.value = gpu_html(report.gpu, report.gpu_note) + "".join(
            f"<p>{html.escape(d.explain())}</p>" for d in report.gpu
        )
        self.findings.value = findings_html(report.findings)
        self._show_table()

    def refresh(self) -> None:
        if self._refresh_fn is not None:
            self.show(self._refresh_fn())

    def sort(self, column: str) -> None:
        """Sort the table by `column`; clicking the same column again reverses the order."""
        if column == self.sort_by:
            self.ascending = not self.ascending
        else:
            self.sort_by, self.ascending = column, column not in _NUMERIC
        self._show_table()

    def rows(self):
        """The table as shown: filtered by role, sorted, cut to top-N (a DataFrame, for tests and users)."""
        frame = self.report.to_frame()
        if self.role.value == UNREACHABLE:
            frame = frame[~frame["reachable"]]
        elif self.role.value != "all":
            frame = frame[frame["role"].eq(self.role.value) & frame["reachable"]]
        key = frame[self.sort_by].map(str) if self.sort_by == "shape" else frame[self.sort_by]
        order = key.sort_values(ascending=self.ascending, kind="stable").index
        return frame.loc[order].head(self.top_n.value).reset_index(drop=True)

    def _show_table(self) -> None:
        rows = self.rows()
        arrow = "&#9650;" if self.ascending else "&#9660;"
        head = "".join(
            f"<th>{c}{(' ' + arrow) if c == self.sort_by else ''}</th>"
            for c in (*SORTABLE, "view", "shares_with")
        )
        body = []
        for r in rows.itertuples(index=False):
            cells = [
                html.escape(r.name),
                html.escape(r.role if r.reachable else UNREACHABLE),
                html.escape(str(tuple(r.shape))),
                r.dtype,
                r.device,
                fmt_bytes(r.bytes),
                fmt_bytes(r.storage_bytes),
                "view" if r.view else "",
                html.escape(r.shares_with or ""),
            ]
            body.append(
                f"<tr data-name='{html.escape(r.name, quote=True)}' data-bytes='{r.bytes}' "
                f"data-storage-bytes='{r.storage_bytes}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
            )
        self.table.value = (
            f"<table class='nbdebug-memory-rows' data-sort='{self.sort_by}' "
            f"data-ascending='{str(self.ascending).lower()}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            f"<small>{len(rows)} of {len(self.report.records)} tensors shown</small>"
        )

    # ------------------------------------------------------------------ live watch
    def _toggle_watch(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.start_watch()
        elif self.watch is not None:
            self.watch.stop(wait=False)

    def start_watch(self) -> MemoryWatch:
        """Start a `MemoryWatch` shown live under the table; the Watch toggle goes off when it ends."""
        if self.watch is not None and self.watch.running:
            return self.watch
        self.watch = MemoryWatch(interval=self._watch_interval, seconds=self._watch_seconds)
        self.live_panel = WatchPanel(self.watch, on_end=self._watch_ended)
        self.live_box.children = [self.live_panel]
        self.watch.start()
        return self.watch

    def _watch_ended(self) -> None:
        if self.watch_toggle.value:
            self.watch_toggle.value = False

    @property
    def live_status(self) -> w.HTML | None:
        """The live watch's status line (None before the first watch)."""
        return self.live_panel.status if self.live_panel is not None else None

    @property
    def live(self) -> w.Image | None:
        """The live watch's plot (None before the first watch)."""
        return self.live_panel.image if self.live_panel is not None else None

    def static(self) -> MemoryReport:
        return self.report


class WatchPanel(Panel):
    """Live plot of a running `MemoryWatch` (what `%nn_mem --watch` shows), redrawn at most twice a second
    from the sampler thread and once when the watch ends."""

    def __init__(self, watch: MemoryWatch, on_end: Callable[[], None] | None = None) -> None:
        self.watch = watch
        self.on_end = on_end
        self.image = w.Image(format="png")
        self.status = w.HTML()
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.stop_button.on_click(lambda _: self.watch.stop(wait=False))
        self.throttle = Throttle(0.5)
        self._lock = threading.Lock()
        super().__init__([w.HBox([self.stop_button, self.status]), self.image])
        self.tag(
            (self, "nbdebug-memory-live"),
            (self.stop_button, "nbdebug-memory-watch-stop"),
            (self.status, "nbdebug-memory-live-status"),
        )
        watch.listeners.append(self._on_sample)
        self._on_sample(watch, force=True)

    def _on_sample(self, watch: MemoryWatch, force: bool = False) -> None:
        ended = watch._stop.is_set()
        if not (force or ended or self.throttle.due()):
            return
        if not self._lock.acquire(blocking=force or ended):
            return
        try:
            start = time.perf_counter()
            n = len(watch.samples)
            if n:
                self.image.value = self.png(watch_figure(watch), dpi=100)
            state = "stopped" if ended else "watching"
            last = watch.samples[-1] if n else None
            now = (
                f", allocated {fmt_bytes(last.allocated)}, reserved {fmt_bytes(last.reserved)}"
                if last
                else ""
            )
            self.status.value = (
                f"<span data-samples='{n}'>{state}: {html.escape(watch.source)}, {n} samples{now}</span>"
            )
            self.stop_button.disabled = ended
            self.throttle.done(start)
        finally:
            self._lock.release()
        if ended and self.on_end is not None:
            self.on_end()

    def static(self) -> MemoryWatch:
        return self.watch
