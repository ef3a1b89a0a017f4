"""The live training dashboard: a thin ipywidgets view over a running `Watch`.

`Watch` calls `WatchPanel.refresh` from the training loop at a bounded rate (at most every
`update_interval` seconds and never for more than ~10% of the wall time, see `Watch._notify`). A
refresh redraws the status line, the findings and the loss plot, plus whichever tab is open; the other
tabs are drawn when opened. The panel computes nothing: it renders the Watch's frames with
`monitor/plot.py`.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as w

from .._core.findings import findings_html
from .._core.panel import Panel
from .._core.throttle import Throttle
from .fit import CODES as FIT_CODES
from .plot import curves_figure, histogram_figure, loss_figure, ratio_figure

TABS = ("Loss", "Update ratios", "Distributions", "Train / val")


class WatchPanel(Panel):
    """Status, findings (as soon as they are found) and tabs: loss, update ratios, per-layer
    histograms with a layer selector and a step slider, train/validation curves."""

    def __init__(self, watch: Any) -> None:
        self.watch = watch
        self.status = w.HTML()
        self.findings = w.HTML()
        self.loss_img = w.Image(format="png")
        self.scale = w.ToggleButtons(options=["linear", "log"], value="linear", description="scale")
        self.ratio_img = w.Image(format="png")
        self.layer = w.Dropdown(options=[], description="layer")
        self.kind = w.ToggleButtons(options=["activation", "gradient"], value="activation")
        self.step = w.SelectionSlider(options=[0], value=0, description="step", continuous_update=False)
        self.hist_img = w.Image(format="png")
        self.curves_img = w.Image(format="png")
        self.advice = w.HTML()  # the train/validation advice next to the curves
        self.tabs = w.Tab(
            children=[
                w.VBox([self.scale, self.loss_img]),
                self.ratio_img,
                w.VBox([w.HBox([self.layer, self.kind]), self.step, self.hist_img]),
                w.VBox([self.curves_img, self.advice]),
            ]
        )
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        super().__init__([self.status, self.findings, self.tabs])
        self.tag(
            (self, "nbdebug-watch-panel"),
            (self.status, "nbdebug-watch-status"),
            (self.findings, "nbdebug-watch-findings"),
            (self.loss_img, "nbdebug-watch-loss"),
            (self.scale, "nbdebug-watch-scale"),
            (self.ratio_img, "nbdebug-watch-ratios"),
            (self.layer, "nbdebug-watch-layer"),
            (self.kind, "nbdebug-watch-kind"),
            (self.step, "nbdebug-watch-step"),
            (self.hist_img, "nbdebug-watch-hist"),
            (self.curves_img, "nbdebug-watch-curves"),
            (self.advice, "nbdebug-watch-advice"),
            (self.tabs, "nbdebug-watch-tabs"),
        )
        self.scale.observe(lambda _: self._draw_loss(), names="value")
        self.tabs.observe(lambda _: self._draw_tab(), names="selected_index")
        for control in (self.layer, self.kind, self.step):
            control.observe(lambda _: self._draw_hist(), names="value")
        self.figures = Throttle(watch.update_interval)
        self.refresh()

    # -- drawing -------------------------------------------------------------------------------------
    def refresh(self, watch: Any = None) -> None:
        """Update the panel; `Watch` calls this during the run (the argument is the Watch).

        Status and findings (cheap HTML) are updated on every call, so a new finding shows at once;
        figures (~0.1 s of matplotlib each) are redrawn at most every `update_interval` seconds and
        never for more than ~10% of the time, so the dashboard does not slow the training it watches.
        """
        self.status.value = self._status_html()
        self.findings.value = findings_html(self.watch.findings, empty="No findings so far.")
        if self.figures.due():
            start = time.perf_counter()
            self._draw_loss()
            self._draw_tab()
            self.figures.done(start)

    def finish(self) -> None:
        """Final rendering of every tab, once the run is over."""
        self.figures.reset()
        self.refresh()
        self._draw_ratios()
        self._draw_hist()
        self._draw_curves()

    def _status_html(self) -> str:
        wt = self.watch
        h = wt.history
        loss = h["loss"].dropna()
        last = f" &middot; loss <b>{loss.iloc[-1]:.4g}</b>" if len(loss) else ""
        ep = wt.epochs
        wiggle = ""
        if len(ep) and ep["loss_std"].notna().any():
            row = ep.dropna(subset=["loss_std"]).iloc[-1]
            wiggle = f" &middot; wiggle (std in epoch) {row['loss_std']:.3g} at batch size {int(row['batch_size'])}"
        state = "running" if wt.running else "finished"
        if wt.exc_type is not None:
            state = f"stopped by {html.escape(wt.exc_type.__name__)}"
        return (
            f'<div class="nbdebug-watch-state" data-state="{state}"><b>nbdebug.watch</b> ({state}): '
            f"step {wt.steps} &middot; epoch {max(len(ep) - 1, 0)}{last}{wiggle}</div>"
        )

    @property
    def redraws(self) -> int:
        """How many times the figures were redrawn."""
        return self.figures.count

    def _draw_loss(self) -> None:
        if self.watch.steps:
            self.loss_img.value = self.png(loss_figure(self.watch, log=self.scale.value == "log"), dpi=80)

    def _draw_tab(self) -> None:
        index = self.tabs.selected_index
        if index == 1:
            self._draw_ratios()
        elif index == 2:
            self._draw_hist()
        elif index == 3:
            self._draw_curves()

    def _draw_ratios(self) -> None:
        if self.watch.monitor.samples:
            self.ratio_img.value = self.png(ratio_figure(self.watch), dpi=80)

    def _draw_curves(self) -> None:
        if len(self.watch.epochs):
            self.curves_img.value = self.png(curves_figure(self.watch), dpi=80)
        advice = [f for f in self.watch.findings if f.code in FIT_CODES]
        best = self.watch.best_epoch
        head = f"<b>best epoch: {best}</b> (lowest validation loss)" if best is not None else ""
        self.advice.value = head + (findings_html(advice) if advice else "")

    def _draw_hist(self) -> None:
        layers = self.watch.layers()
        if list(self.layer.options) != layers:
            current = self.layer.value
            self.layer.options = layers
            if current in layers:
                self.layer.value = current
        if not self.layer.value:
            return
        steps = [s for s, *_ in self.watch.histograms(self.layer.value, self.kind.value)]
        if steps and list(self.step.options) != steps:
            at_end = self.step.value == self.step.options[-1] or self.step.value not in steps
            self.step.options = steps
            if at_end:
                self.step.value = steps[-1]
        step = self.step.value if steps else None
        self.hist_img.value = self.png(
            histogram_figure(self.watch, self.layer.value, self.kind.value, step), dpi=80
        )

    def static(self) -> Any:
        return self.watch


def watch_panel(watch: Any) -> WatchPanel:
    """A dashboard over `watch` that it refreshes live; display it before the loop runs."""
    panel = WatchPanel(watch)
    watch.on_update = panel.refresh
    return panel
