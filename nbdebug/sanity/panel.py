"""The live overfit panel: loss per epoch, linear/log toggle, progress, Stop, and the verdict.

A thin view over `OverfitResult`: `update(result)` is the `overfit` callback; it never computes, only
redraws (throttled, so a fast loop is not slowed by the plot). The Stop button sets an event that
`overfit` polls through `should_stop`.

While a cell runs, the kernel does not read widget messages, so a plain button click would wait for the
loop to end. On ipykernel >= 7 (kernel subshells) the Stop button's messages are routed to a subshell
thread, which handles them at once; elsewhere the button says so and interrupting the kernel stops the
run (the model is restored either way).
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets

from .._core.findings import findings_html
from .._core.panel import Panel
from .._core.throttle import Throttle
from .plot import overfit_figure

_SUBSHELL: dict[str, str] = {}


def route_to_subshell(widget: widgets.Widget, timeout: float = 5.0) -> bool:
    """Have `widget`'s frontend messages handled on a kernel subshell thread, so they arrive while the
    main thread is busy running the cell. Returns False where the kernel cannot do it."""
    try:
        from ipykernel.kernelbase import Kernel

        if not Kernel.initialized():
            return False
        thread = getattr(Kernel.instance(), "shell_channel_thread", None)
        manager = getattr(thread, "manager", None)
        comm = getattr(widget, "comm", None)
        if thread is None or manager is None or comm is None or not hasattr(manager, "_create_subshell"):
            return False
        if "id" not in _SUBSHELL:
            done = threading.Event()

            def create() -> None:
                try:
                    _SUBSHELL["id"] = manager._create_subshell()
                finally:
                    done.set()

            thread.io_loop.add_callback(create)
            if not done.wait(timeout) or "id" not in _SUBSHELL:
                return False
        sid = _SUBSHELL["id"]
        comm._reply_subshell_for = lambda data, default: sid
        return True
    except Exception:  # any other kernel: the button still works between cells
        return False


class OverfitPanel(Panel):
    """Live view of an `overfit` run; pass `panel.update` as callback and `panel.should_stop`."""

    def __init__(self, min_interval: float = 0.5, max_overhead: float = 0.08, log: bool = False) -> None:
        # the figure: at most every `min_interval` s and `max_overhead` of the loop's time; the text: 10x a second
        self.figure = Throttle(min_interval, share_inverse=1 / max_overhead)
        self.text = Throttle(0.1, share_inverse=0.0)
        self._started = False
        self._stop = threading.Event()
        self._result: Any = None
        self.title = widgets.HTML("<b>nbdebug.overfit</b>: starting")
        # the share of the budget used: epochs or time, whichever runs out first
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="budget")
        self.status = widgets.HTML("")
        self.scale = widgets.ToggleButtons(options=["linear", "log"], value="log" if log else "linear")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop")
        self.plot = widgets.Image(format="png")
        self.verdict = widgets.HTML("")
        self.tag(
            (self.title, "nbdebug-overfit-title"),
            (self.progress, "nbdebug-overfit-progress"),
            (self.status, "nbdebug-overfit-status"),
            (self.scale, "nbdebug-overfit-scale"),
            (self.stop_button, "nbdebug-overfit-stop"),
            (self.plot, "nbdebug-overfit-plot"),
            (self.verdict, "nbdebug-overfit-verdict"),
        )
        self.stop_button.on_click(lambda _: self.stop())
        self.scale.observe(self._on_scale, names="value")
        self._redraw_now = False
        super().__init__(
            [
                self.title,
                widgets.HBox([self.progress, self.stop_button, self.scale]),
                self.status,
                self.plot,
                self.verdict,
            ]
        )
        self.add_class("nbdebug-overfit")
        self._placeholder()  # also pays matplotlib's one-time start-up before the timed loop begins
        self.live_stop = route_to_subshell(self.stop_button)
        route_to_subshell(self.scale)  # the linear/log toggle also answers while the loop runs
        if not self.live_stop:
            self.stop_button.tooltip = "takes effect between cells here; interrupt the kernel to stop a run"

    # --- wiring for overfit() ---------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self.stop_button.disabled = True
        self.stop_button.description = "Stopping"

    def _on_scale(self, _: Any) -> None:
        if self._result is not None and not self._result.done:
            self._redraw_now = True  # the training thread redraws at its next epoch (one drawing thread)
        else:
            self._draw_figure()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def update(self, result: Any) -> None:
        """overfit's per-epoch callback, throttled: text at most every 0.1 s, the figure at most every
        `min_interval` s and never more often than keeps its cost under `max_overhead` of the loop."""
        self._result = result
        now = time.perf_counter()
        if not self._started:  # the clock starts at the first epoch; nothing is drawn yet
            self._started = True
            self.figure.last = self.text.last = now
        if result.done:
            self._draw_text()
            self._draw_figure()
            return
        if self._redraw_now or self.figure.due(now):
            self._redraw_now = False
            self._draw_text()
            self._draw_figure()
        elif self.text.due(now):
            self._draw_text()

    # --- drawing ----------------------------------------------------------------------------
    def _draw_text(self) -> None:
        r = self._result
        if r is None:
            return
        self.text.last = time.perf_counter()
        used = max(r.epochs / max(r.max_epochs, 1), r.elapsed / r.time_budget if r.time_budget > 0 else 0.0)
        self.progress.value = 1.0 if r.done else min(used, 1.0)
        last = r.rows[-1] if r.rows else {}
        acc = last.get("accuracy")
        acc_s = f", accuracy {acc:.0%}" if isinstance(acc, float) and acc == acc else ""
        self.status.value = (
            f"epoch {r.epochs}, loss {r.final_loss:.4g} (target {r.target:.3g}){acc_s}, {r.elapsed:.1f} s"
            f"<br>optimizer: {html.escape(r.optimizer)}"
            + (f"; turned off: {html.escape(', '.join(r.turned_off))}" if r.turned_off else "")
        )
        colour = "#2e7d32" if r.passed else ("#555" if not r.done else "#c62828")
        self.title.value = (
            f'<b>nbdebug.overfit</b>: <span style="color:{colour}">{html.escape(r.verdict())}</span>'
        )
        if r.done:  # the verdict first: a reader who sees "Stopped" finds the findings already there
            self.verdict.value = findings_html(r.findings, "The model can fit the subset.")
            self.stop_button.disabled = True
            self.stop_button.description = "Stopped" if r.stopped else "Done"

    def _draw_figure(self) -> None:
        r = self._result
        if r is None or not r.rows:
            return
        start = time.perf_counter()
        self.plot.value = self.png(overfit_figure(r, log=self.scale.value == "log"), dpi=80)
        self.figure.done(start)

    @property
    def redraws(self) -> int:
        """How many times the loss figure was drawn."""
        return self.figure.count

    def _placeholder(self) -> None:
        from .._core.plot import new_figure

        fig = new_figure(6.0, 3.2)
        ax = fig.add_subplot()
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.text(0.5, 0.5, "waiting for the first epoch", ha="center", va="center", transform=ax.transAxes)
        self.plot.value = self.png(fig, dpi=80)
        start = time.perf_counter()  # the second render is what a redraw costs: the first live redraw
        self.png(fig, dpi=80)  # waits for the loop to have run cost / max_overhead seconds
        self.figure.cost = time.perf_counter() - start

    def static(self) -> Any:
        return self._result
