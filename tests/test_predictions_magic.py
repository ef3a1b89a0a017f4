"""%nn_preds / %nn_filters through a real IPython shell, and the panels' behaviour in Python."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from IPython.core.error import UsageError
from torch import nn

import nbdebug
from nbdebug.predictions.filters import FilterView
from nbdebug.predictions.panel import FiltersPanel, PredictionsPanel
from nbdebug.predictions.report import PredictionReport
from nbdebug.predictions.topk import TopkTracker

pytestmark = pytest.mark.slow  # IPython shells and panels: `make test` runs them, `make check` does not


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 3)
    )  # fmt: skip


@pytest.fixture
def ns(ip):
    torch.manual_seed(0)
    ip.user_ns.update(
        model=small_cnn(), x=torch.randn(60, 1, 8, 8), y=torch.arange(60) % 3, names=["a", "b", "c"]
    )
    return ip


def test_nn_preds_returns_the_report_with_options(ns):
    r = ns.run_line_magic("nn_preds", "model (x,y) -k 2 -n 30 --classes names --static -o")
    assert isinstance(r, PredictionReport)
    assert r.n == 30 and r.k == 2 and r.classes == ["a", "b", "c"]
    assert ns.run_line_magic("nn_preds", "model (x,y)") is None  # panel displayed, nothing returned
    ns.user_ns["tracker"] = tracker = TopkTracker(k=3)
    with torch.no_grad():
        tracker.update(ns.user_ns["model"](ns.user_ns["x"]), ns.user_ns["y"])
    tracker.end_epoch()
    ns.run_line_magic("nn_preds", "model (x,y) --history tracker")
    r2 = ns.run_line_magic("nn_preds", "model '(x, y)' --image-shape 8x8 -o")
    assert r2.image_shape == (8, 8) and r2.image(0).shape == (8, 8)


def test_nn_preds_bad_input_is_a_usage_error(ns):
    with pytest.raises(UsageError, match=r"labels contain classes \[3, 4\] outside the model's 3 outputs"):
        ns.run_line_magic("nn_preds", "model (x,y+2)")
    with pytest.raises(UsageError, match="'nothing' is not defined"):
        ns.run_line_magic("nn_preds", "model nothing")
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ns.run_line_magic("nn_preds", "model (x,y) --bogus")
    with pytest.raises(UsageError, match="--image-shape must look like"):
        ns.run_line_magic("nn_preds", "model (x,y) --image-shape big")
    with pytest.raises(UsageError, match="unbalanced brackets or quotes"):
        ns.run_line_magic("nn_preds", "model '(x,y)")


def test_nn_filters_returns_the_view_and_lists_layers_on_error(ns):
    v = ns.run_line_magic("nn_filters", "model 2 --data (x,y) --example 4 --global --channel 1 -o")
    assert isinstance(v, FilterView)
    assert v.layer == "2" and v.normalize == "global" and v.channel == 1 and v.feature_maps.shape == (6, 4, 4)
    with pytest.raises(
        UsageError, match=r"no layer 'conv9'; conv layers: 0  Conv2d \(4, 1, 3, 3\), 2  Conv2d"
    ):
        ns.run_line_magic("nn_filters", "model conv9")
    with pytest.raises(UsageError, match="no convolution layers"):
        ns.run_line_magic("nn_filters", "model[5]")


def test_magic_help_documents_every_option(ns):
    doc = ns.find_line_magic("nn_preds").__doc__
    for opt in (
        "-k",
        "-n",
        "--classes",
        "--scores",
        "--labels",
        "--image-shape",
        "--history",
        "--static",
        "-o",
        "--output",
        "--return",
    ):
        assert opt in doc
    doc = ns.find_line_magic("nn_filters").__doc__
    for opt in ("layer", "--data", "--example", "--channel", "--global", "--static", "-o"):
        assert opt in doc


def test_predictions_panel_filters_and_browses():
    x, y = torch.randn(60, 1, 8, 8), torch.arange(60) % 3
    report = nbdebug.predictions(small_cnn(), (x, y))
    panel = PredictionsPanel(report)
    assert panel.slider.max == 59 and "example <b>0</b>" in panel.caption.value
    first = panel.example.value
    panel.slider.value = 7
    assert "example <b>7</b>" in panel.caption.value and panel.example.value != first
    panel.show.value = "mistakes only"
    assert panel.rows == report.select(mistakes=True) and panel.slider.value == 0
    panel.true_class.value = 2
    assert all(int(report.labels[r]) == 2 for r in panel.rows)
    panel.sort.value = "highest loss first"
    assert panel.rows == report.select(mistakes=True, true_class=2, sort="loss")
    with_drift = PredictionsPanel(
        report, history=pd.DataFrame([{"epoch": 0, "accuracy": 0.5, "true_prob": 0.4, "p1": 0.6}])
    )
    assert any("nbdebug-preds-drift" in c._dom_classes for c in with_drift.children)
    bundle = panel._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data and "<img" in data["text/html"]


def test_predictions_panel_with_no_match_and_no_labels():
    x = torch.randn(10, 1, 8, 8)
    model = small_cnn()
    with torch.no_grad():
        model[-1].bias[:] = torch.tensor([50.0, 0, 0])
    panel = PredictionsPanel(nbdebug.predictions(model, (x, torch.zeros(10, dtype=torch.long))))
    panel.show.value = "mistakes only"
    assert "no example matches" in panel.caption.value
    unlabelled = PredictionsPanel(nbdebug.predictions(model, x))
    assert unlabelled.show.disabled and "highest loss first" not in unlabelled.sort.options


def test_filters_panel_switches_layer_channel_and_example():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    data = torch.randn(5, 3, 10, 10)
    panel = FiltersPanel(nbdebug.filters(model, data=data), model=model, data=data)
    assert [o[0] for o in panel.channel.options][0] == "RGB"
    grid = panel.grid.value
    panel.normalize.value = "global"
    assert panel.grid.value != grid
    panel.layer.value = "2"
    assert panel.view.layer == "2" and panel.view.weight.shape == (2, 4, 3, 3)
    assert [o[1] for o in panel.channel.options] == [0, 1, 2, 3]
    assert panel.summary.value.startswith("2: Conv2d")
    panel.channel.value = 3
    panel.example.value = 4
    assert panel.view.example == 4 and panel.view.feature_maps.shape == (2, 6, 6)
    panel.example.value = 99
    assert "out of range" in panel.error.value  # shown in the panel, not raised into the event loop
    static = FiltersPanel(nbdebug.filters(model))
    assert static.layer.disabled and static.maps not in static.children
