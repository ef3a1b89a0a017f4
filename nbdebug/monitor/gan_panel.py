"""The live GAN dashboard: a thin ipywidgets view over a running `GanWatch`.

`GanWatch` calls `GanPanel.refresh` from the training loop at a bounded rate (see `GanWatch._notify`).
A refresh redraws the status line, the findings, the curves and, when G produced a new frame from the
fixed noise batch, the sample grid; a slider steps back through earlier frames. The update-ratio tab
reuses the training monitor's per-layer figure for each network. Nothing here computes statistics.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as w

from .._core.findings import findings_html
from .._core.panel import Panel
from .._core.throttle import Throttle
from .gan_plot import curves_figure, layer_ratios_figure, ratios_figure, samples_figure

TABS = ("Curves", "Update ratios")


class GanPanel(Panel):
    """Status, findings as found, the sample grid (with a frame slider) and the curves."""

    def __init__(self, gan: Any) -> None:
        self.gan = gan
        self.status = w.HTML()
        self.findings = w.HTML()
        self.samples_label = w.HTML()
        self.samples_img = w.Image(format="png", layout=w.Layout(width="340px"))
        self.frame = w.IntSlider(value=0, min=0, max=0, description="frame", continuous_update=False)
        self.curves_img = w.Image(format="png", layout=w.Layout(width="680px"))
        self.ratios_img = w.Image(format="png")
        self.tabs = w.Tab(children=[self.curves_img, self.ratios_img])
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)
        left = w.VBox([self.samples_label, self.samples_img, self.frame])
        super().__init__([self.status, self.findings, w.HBox([left, self.tabs])])
        self.tag(
            (self, "nbdebug-gan-panel"),
            (self.status, "nbdebug-gan-status"),
            (self.findings, "nbdebug-gan-findings"),
            (self.samples_label, "nbdebug-gan-samples-step"),
            (self.samples_img, "nbdebug-gan-samples"),
            (self.frame, "nbdebug-gan-frame"),
            (self.curves_img, "nbdebug-gan-curves"),
            (self.ratios_img, "nbdebug-gan-ratios"),
            (self.tabs, "nbdebug-gan-tabs"),
        )
        self.frame.observe(lambda _: self._draw_samples(), names="value")
        self.tabs.observe(lambda _: self._draw_tab(), names="selected_index")
        self._shown_frames = 0
        self.grid = Throttle(
            0.0
        )  # a new frame is drawn at once, unless drawing would take > ~10% of the time
        self.curves = Throttle(gan.update_interval)
        self.redraws = 0
        self.refresh()
        self._draw_samples()

    # -- drawing -------------------------------------------------------------------------------------
    def refresh(self, gan: Any = None) -> None:
        """Update the panel; `GanWatch` calls this during the run (the argument is the GanWatch).

        Status and findings (cheap HTML) are updated on every call, so a new finding shows at once. The
        sample grid (~0.15 s of matplotlib) is redrawn when G produced a new frame and the curves (~0.5 s)
        at most every `update_interval` s; each at most ~10% of the time (the next draw waits 10x as
        long as the last one took), so the dashboard does not slow the training it watches.
        """
        self.findings.value = findings_html(self.gan.findings, empty="No findings so far.")
        if not self.gan.running:  # the run is over: this refresh shows the final grid and curves
            self.grid.reset()
            self.curves.reset()
        n = len(self.gan.frames)
        if n != self._shown_frames and self.grid.due():
            start = time.perf_counter()
            follow = self.frame.value >= self.frame.max  # the user is not browsing an earlier frame
            self._shown_frames = n
            self.frame.max = max(n - 1, 0)
            if follow and self.frame.value != self.frame.max:
                self.frame.value = self.frame.max  # redraws through the observer
            else:
                self._draw_samples()
            self.grid.done(start)
        if len(self.gan._rows) and self.curves.due():
            start = time.perf_counter()
            self._draw_tab()
            self.curves.done(start)
        # status last: when it says "finished", the grid and curves it sits above are final too
        self.status.value = self._status_html()
        self.redraws += 1

    def redraw(self, curves: bool = True) -> None:
        """Status, findings, sample grid (and curves) now, whatever the throttling says."""
        self.grid.reset()
        if curves:
            self.curves.reset()
            self.refresh()
            return
        self.curves.last = float("inf")  # not due during this refresh, due at the next one
        self.refresh()
        self.curves.reset()

    def finish(self) -> None:
        """Final rendering of everything, once the run is over."""
        self.redraw()
        self._draw_ratios()

    def _status_html(self) -> str:
        g = self.gan
        state = html.escape(g.state)
        last = ""
        if g._rows:
            r = g._rows[-1]
            last = (
                f" &middot; D loss <b>{r['d_loss']:.3g}</b> &middot; G loss <b>{r['g_loss']:.3g}</b>"
                f" &middot; D(x) {r['d_real']:.2f} &middot; D(G(z)) {r['d_fake']:.2f}"
            )
        return (
            f'<div class="nbdebug-gan-state" data-state="{state}"><b>nbdebug.watch_gan</b> ({state}): '
            f"G step {g.steps} &middot; D step {g.d_steps}{last}</div>"
        )

    def _draw_samples(self) -> None:
        frames = self.gan.frames
        if not frames:
            self.samples_label.value = "<i>samples appear after G's first step</i>"
            return
        i = min(self.frame.value, len(frames) - 1)
        f = frames[i]
        self.samples_label.value = (
            f'<span data-step="{f.step}">samples from the fixed noise batch after G step <b>{f.step}</b>'
            f" (frame {i + 1} of {len(frames)})</span>"
        )
        self.samples_img.value = self.png(samples_figure(self.gan, index=i), dpi=80)

    def _draw_tab(self) -> None:
        if self.tabs.selected_index == 1:
            self._draw_ratios()
        else:
            self.curves_img.value = self.png(curves_figure(self.gan), dpi=80)

    def _draw_ratios(self) -> None:
        from .._core.plot import new_figure

        fig = new_figure(12, 3.2)
        axes = fig.subplots(1, 3)
        ratios_figure(self.gan, ax=axes[0])
        layer_ratios_figure(self.gan, "D", ax=axes[1])
        layer_ratios_figure(self.gan, "G", ax=axes[2])
        self.ratios_img.value = self.png(fig, dpi=80)

    def static(self) -> Any:
        return self.gan


def gan_panel(gan: Any) -> GanPanel:
    """A dashboard over `gan` (a GanWatch) that it refreshes live; display it before the loop runs."""
    panel = GanPanel(gan)
    gan.on_update = panel.refresh
    return panel
