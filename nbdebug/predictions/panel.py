"""Panels over `PredictionReport` and `FilterView`.

The predictions panel browses examples (input image beside its top-k bars and the true label) with
filters (mistakes only, one true class, sorted by loss or confidence) under the aggregate view (label vs
predicted frequency, mean probability, confusion) and the findings. The filters panel switches layer,
channel and normalization. Both only re-render; selections come from `PredictionReport.select`, and a
layer switch asks the core `filters()` for the new layer's view.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from .._core.findings import findings_html
from .._core.panel import Panel
from .filters import FilterView
from .filters import filters as load_filters
from .filters_plot import feature_maps_figure, filters_figure
from .plot import drift_figure, example_figure, overview_figure
from .report import PredictionReport

SORTS = {
    "data order": (None, True),
    "highest loss first": ("loss", True),
    "least confident first": ("confidence", False),
    "most confident first": ("confidence", True),
}


class PredictionsPanel(Panel):
    def static(self) -> PredictionReport:
        return self.report

    """Aggregate view, findings, and an example browser over a `PredictionReport`."""

    def __init__(self, report: PredictionReport, history: Any = None) -> None:
        self.report = report
        labelled = report.labels is not None
        header = w.HTML(f"<b>{html.escape(report.summary())}</b>" + findings_html(report.findings))
        header.add_class("nbdebug-preds-findings")
        overview = w.Image(value=self.png(overview_figure(report)), format="png")
        overview.add_class("nbdebug-preds-overview")
        self.show = w.Dropdown(options=["all examples", "mistakes only"], description="show")
        self.true_class = w.Dropdown(
            options=[("any", None)] + [(c, i) for i, c in enumerate(report.classes)], description="true class"
        )
        sorts = SORTS if labelled else {k: v for k, v in SORTS.items() if v[0] != "loss"}
        self.sort = w.Dropdown(options=list(sorts), description="sort")
        for control, name in ((self.show, "show"), (self.true_class, "class"), (self.sort, "sort")):
            control.add_class(f"nbdebug-preds-{name}")
            control.layout.width = "260px"
            control.disabled = name != "sort" and not labelled
        self.slider = w.IntSlider(
            min=0, max=max(report.n - 1, 0), description="example", continuous_update=False
        )
        self.slider.add_class("nbdebug-preds-slider")
        self.caption = w.HTML()
        self.caption.add_class("nbdebug-preds-caption")
        self.example = w.Image(format="png")
        self.example.add_class("nbdebug-preds-example")
        self.rows: list[int] = []
        children: list[w.Widget] = [header, overview]
        if history is not None and len(history):
            drift = w.Image(value=self.png(drift_figure(history)), format="png")
            drift.add_class("nbdebug-preds-drift")
            children.append(drift)
        children += [w.HBox([self.show, self.true_class, self.sort]), self.slider, self.caption, self.example]
        super().__init__(children, layout=w.Layout(align_items="flex-start"))  # images at natural size
        self.add_class("nbdebug-preds")
        for control in (self.show, self.true_class, self.sort):
            control.observe(self._select, names="value")
        self.slider.observe(self._render, names="value")
        self._select()

    def _select(self, *_: Any) -> None:
        sort, descending = SORTS[self.sort.value]
        self.rows = self.report.select(
            mistakes=self.show.value == "mistakes only",
            true_class=self.true_class.value,
            sort=sort,
            descending=descending,
        )
        self.slider.max = max(len(self.rows) - 1, 0)
        self.slider.value = 0
        self._render()

    def _render(self, *_: Any) -> None:
        if not self.rows:
            self.caption.value = "<i>no example matches these filters</i>"
            self.example.value = b""
            return
        row = self.rows[self.slider.value]
        t = self.report.topk.iloc[row]
        parts = [
            f"example <b>{int(self.report.index[row])}</b> ({self.slider.value + 1} of {len(self.rows)})"
        ]
        if "label" in t:
            mark = "&#10003;" if t["correct"] else "&#10007;"
            parts.append(f"label <b>{html.escape(str(t['label']))}</b>")
            parts.append(f"predicted <b>{html.escape(str(t['pred']))}</b> {mark} (p={t['confidence']:.2f})")
            parts.append(f"loss {t['loss']:.3f}")
        else:
            parts.append(f"predicted <b>{html.escape(str(t['pred']))}</b> (p={t['confidence']:.2f})")
        self.caption.value = ", ".join(parts)
        self.example.value = self.png(example_figure(self.report, row))


class FiltersPanel(Panel):
    def static(self) -> FilterView:
        return self.view

    """Filter grid with layer / channel / normalization controls, and feature maps when data is given."""

    def __init__(self, view: FilterView, model: Any = None, data: Any = None) -> None:
        self.view = view
        self.model, self.data = model, data
        self.layer = w.Dropdown(
            options=[(info.label, info.name) for info in view.layers] or [(view.layer, view.layer)],
            value=view.layer,
            description="layer",
            disabled=model is None,
        )
        self.layer.layout.width = "420px"
        self.channel = w.Dropdown(description="channel")
        self.normalize = w.ToggleButtons(
            options=[("per filter", "filter"), ("global", "global")],
            value=view.normalize,
            description="scale",
        )
        self.example = w.BoundedIntText(
            value=view.example or 0, min=0, max=10**9, description="example", disabled=data is None
        )
        self.summary = w.HTML()
        self.grid = w.Image(format="png")
        self.maps = w.Image(format="png")
        self.error = w.HTML()
        for widget, name in (
            (self.layer, "layer"), (self.channel, "channel"), (self.normalize, "norm"),
            (self.example, "example"), (self.summary, "summary"), (self.grid, "grid"), (self.maps, "maps"),
            (self.error, "error"),
        ):  # fmt: skip
            widget.add_class(f"nbdebug-filters-{name}")
        controls = w.HBox([self.layer, self.channel])
        children = [controls, self.normalize, self.summary, self.grid, self.error]
        if data is not None:
            children += [self.example, self.maps]
        super().__init__(children, layout=w.Layout(align_items="flex-start"))  # images at natural size
        self.add_class("nbdebug-filters")
        self._set_channels()
        self.layer.observe(self._switch, names="value")
        self.example.observe(self._switch, names="value")
        self.channel.observe(self._render, names="value")
        self.normalize.observe(self._render, names="value")
        self._render()

    def _set_channels(self) -> None:
        v = self.view
        options: list[tuple[str, int | None]] = [("RGB", None)] if v.is_rgb() else []
        if v.spatial_dims == 1:
            options = [("all (rows)", None)]
        else:
            options += [(f"channel {i}", i) for i in range(v.n_channels)]
        self.channel.options = options
        self.channel.value = v.channel if v.channel in [o[1] for o in options] else options[0][1]

    def _switch(self, *_: Any) -> None:
        """A new layer or example: ask the core API for the view, then re-render."""
        from .._core.errors import NbdebugError

        try:
            self.view = load_filters(
                self.model, self.layer.value, data=self.data, example=self.example.value,
                normalize=self.normalize.value,
            )  # fmt: skip
        except NbdebugError as e:
            self.error.value = f'<span style="color:#c62828">{html.escape(str(e))}</span>'
            return
        self.error.value = ""
        self._set_channels()
        self._render()

    def _render(self, *_: Any) -> None:
        view = self.view.with_options(channel=self.channel.value, normalize=self.normalize.value)
        self.summary.value = html.escape(view.summary())
        self.grid.value = self.png(filters_figure(view))
        if view.feature_maps is not None:
            self.maps.value = self.png(feature_maps_figure(view))
