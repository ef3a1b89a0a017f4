"""The layer-by-layer stepper: a table of every step, Prev/Next and a slider, the arithmetic of the
current step written out, and its feature maps. A view over a `Trace`; it computes nothing."""

from __future__ import annotations

import html

import ipywidgets as w

from .._core.panel import Panel
from .plot import feature_maps_png
from .result import Step, Trace, error_html
from .trace import trace

WINDOW = 7  # rows shown above and below the current step


class ShapesPanel(Panel):
    """Step through a `Trace`. Opens on the failing step when the forward pass failed."""

    def __init__(self, result: Trace) -> None:
        self.trace = result
        self._png: dict[int, bytes | None] = {}
        n = len(result.steps)
        start = result.error.step if result.error is not None and result.error.step is not None else 0
        self.summary = w.HTML(self._summary_html())
        self.prev = w.Button(description="Prev", icon="arrow-left", layout=w.Layout(width="90px"))
        self.next = w.Button(description="Next", icon="arrow-right", layout=w.Layout(width="90px"))
        self.slider = w.IntSlider(value=start, min=0, max=max(n - 1, 0), description="step",
                                  continuous_update=True, layout=w.Layout(width="420px"))  # fmt: skip
        self.position = w.HTML()
        self.table = w.HTML()
        self.detail = w.HTML()
        self.fmap = w.Image(format="png")
        self.tag(
            (self, "nbdebug-shapes"), (self.summary, "nbdebug-shapes-summary"), (self.prev, "nbdebug-shapes-prev"),
            (self.next, "nbdebug-shapes-next"), (self.slider, "nbdebug-shapes-slider"),
            (self.position, "nbdebug-shapes-position"), (self.table, "nbdebug-shapes-table"),
            (self.detail, "nbdebug-shapes-detail"), (self.fmap, "nbdebug-shapes-fmap"),
        )  # fmt: skip
        self.prev.on_click(lambda _: self._move(-1))
        self.next.on_click(lambda _: self._move(+1))
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        controls = w.HBox([self.prev, self.next, self.slider, self.position])
        super().__init__([self.summary, controls, self.table, self.detail, self.fmap])
        self._show(start)

    @property
    def current(self) -> int:
        return self.slider.value

    def _move(self, delta: int) -> None:
        self.slider.value = min(max(self.slider.value + delta, self.slider.min), self.slider.max)

    def _summary_html(self) -> str:
        t = self.trace
        out = f"<b>{html.escape(t.summary())}</b>"
        if t.error is not None:
            out += error_html(t.error)
        return out

    def _show(self, index: int) -> None:
        steps = self.trace.steps
        if not steps:
            self.detail.value = "<i>no steps recorded</i>"
            return
        step = steps[index]
        self.position.value = f"<span>{index + 1} / {len(steps)}</span>"
        self.prev.disabled = index <= 0
        self.next.disabled = index >= len(steps) - 1
        self.table.value = _table_html(steps, index)
        self.detail.value = _detail_html(self.trace, step)
        if index not in self._png:
            self._png[index] = feature_maps_png(step)
        png = self._png[index]
        self.fmap.value = png or b""
        if png:  # show at the figure's own pixel size, not stretched to the output width
            self.fmap.width = str(int.from_bytes(png[16:20], "big"))
        self.fmap.layout.display = None if png else "none"

    def static(self) -> Trace:
        return self.trace


def _table_html(steps: list[Step], current: int) -> str:
    lo = max(0, current - WINDOW)
    hi = min(len(steps), lo + 2 * WINDOW + 1)
    lo = max(0, hi - 2 * WINDOW - 1)
    esc = html.escape
    rows = [
        '<table style="border-collapse:collapse;font-size:12px;width:100%">'
        '<thead><tr style="text-align:left"><th>#</th><th>name</th><th>type</th><th>input</th>'
        "<th>output</th><th>dtype</th><th>params</th></tr></thead><tbody>"
    ]
    if lo > 0:
        rows.append(f'<tr><td colspan="7" style="color:#888">... {lo} earlier steps</td></tr>')
    for s in steps[lo:hi]:
        bg = ""
        cls = []
        if s.index == current:
            bg, cls = "background:#fff3b0;font-weight:bold", ["nbdebug-current"]
        if s.status == "error":
            bg = "background:#fde2e1" + (
                ";font-weight:bold;outline:2px solid #c62828" if s.index == current else ""
            )
            cls.append("nbdebug-error")
        elif s.kind == "function" and s.index != current:
            bg = "background:#eef6ff"
        mark = " ✗" if s.status == "error" else ""
        pad = f"padding-left:{4 + 12 * s.depth}px"
        rows.append(
            f'<tr class="{" ".join(cls)}" data-step="{s.index}" style="{bg}"><td>{s.index}</td>'
            f'<td style="{pad}"><code>{esc(s.name)}</code>{mark}</td><td>{esc(s.type)}</td>'
            f"<td>{esc(s.input_repr)}</td><td>{esc(s.output_repr or '-')}</td><td>{esc(s.dtype or '')}</td>"
            f'<td style="text-align:right">{s.params:,}</td></tr>'
        )
    if hi < len(steps):
        rows.append(f'<tr><td colspan="7" style="color:#888">... {len(steps) - hi} later steps</td></tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _detail_html(result: Trace, step: Step) -> str:
    esc = html.escape
    parts = [
        f'<div style="margin-top:6px"><b>Step {step.index}: <code>{esc(step.name)}</code></b> '
        f"({esc(step.type)}, {step.kind})<br>input {esc(step.input_repr or '-')} &rarr; output "
        f"{esc(step.output_repr or '-')}"
    ]
    if step.formula:
        parts.append(f'<pre class="nbdebug-formula" style="margin:4px 0">{esc(step.formula)}</pre>')
    elif step.output_shapes and step.input_shapes and step.input_shapes[0] == step.output_shapes[0]:
        parts.append("<br><i>shape unchanged</i>")
    if step.status == "error" and result.error is not None:
        parts.append(error_html(result.error))
    parts.append("</div>")
    return "".join(parts)


def shapes(model, *inputs, **kwargs) -> ShapesPanel:
    """Trace `model` on `inputs` and open the layer-by-layer stepper (see `nbdebug.trace`)."""
    return ShapesPanel(trace(model, *inputs, **kwargs))
