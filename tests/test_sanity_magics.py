"""%nn_check, %nn_gradcheck, %nn_overfit through a real IPython shell, and the overfit panel as a view."""

from __future__ import annotations

import pytest
import torch
from IPython.core.error import UsageError
from torch import nn

from nbdebug._core.magic import split_expressions
from nbdebug.sanity.overfit import OverfitResult
from nbdebug.sanity.panel import OverfitPanel
from tests.test_sanity import Cube, WrongCube, assert_same, cnn, digits, one_thread, snapshot  # noqa: F401 (module fixture)


@pytest.fixture
def ns(ip):
    x, y = digits(200)
    model = cnn()
    ip.user_ns.update(
        model=model, x=x, y=y, nn=nn, torch=torch, Cube=Cube, WrongCube=WrongCube,
        opt=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    )  # fmt: skip
    return ip


def test_split_keeps_bracketed_expressions_whole():
    assert split_expressions("m (x[:64], y[:64]) nn.CrossEntropyLoss() -n 20") == [
        "m", "(x[:64], y[:64])", "nn.CrossEntropyLoss()", "-n", "20",
    ]  # fmt: skip
    assert split_expressions("f {'a': 'b c'} --lr 1e-3") == ["f", "{'a': 'b c'}", "--lr", "1e-3"]
    with pytest.raises(UsageError, match="unbalanced"):
        split_expressions("m (x, y nn.MSELoss()")


def test_nn_check_returns_the_report_and_leaves_the_model(ns):
    snap = snapshot(ns.user_ns["model"])
    report = ns.run_line_magic("nn_check", "model (x[:64], y[:64]) nn.CrossEntropyLoss() --optimizer opt -o")
    assert report.passed and report.loss_kind == "ce"
    assert_same(ns.user_ns["model"], snap)
    buggy = ns.run_line_magic("nn_check", "model (x[:64] * 255, y[:64]) nn.CrossEntropyLoss() -o")
    assert "unnormalized-input" in {f.code for f in buggy.findings}
    reg = ns.run_line_magic(
        "nn_check",
        "model (x[:64], y[:64]) nn.CrossEntropyLoss() --reg (lambda s: nn.CrossEntropyLoss()) "
        "--reg-strengths 0,1 -o",
    )
    assert "reg-not-increasing-loss" in {f.code for f in reg.findings}
    assert ns.run_line_magic("nn_check", "model (x[:64], y[:64]) nn.CrossEntropyLoss()") is None


def test_nn_check_usage_errors(ns):
    with pytest.raises(UsageError, match="integer class indices"):
        ns.run_line_magic("nn_check", "model (x[:64], y[:64].float()) nn.CrossEntropyLoss()")
    with pytest.raises(UsageError, match="'nope' is not defined"):
        ns.run_line_magic("nn_check", "model (x, y) nope")
    with pytest.raises(UsageError, match="required"):
        ns.run_line_magic("nn_check", "model")
    with pytest.raises(UsageError, match="reg-strengths"):
        ns.run_line_magic("nn_check", "model (x, y) nn.CrossEntropyLoss() --reg-strengths a,b")


def test_nn_gradcheck(ns):
    bad = ns.run_line_magic("nn_gradcheck", "WrongCube torch.randn(5, 2) -o")
    assert not bad.passed and bad.findings[0].code == "gradcheck-failed"
    good = ns.run_line_magic("nn_gradcheck", "Cube torch.randn(5, 2) --max-entries 4 -o")
    assert good.passed and list(good.rows.checked) == [4]
    only_inputs = ns.run_line_magic("nn_gradcheck", "nn.Linear(3, 2) torch.randn(2, 3) --no-params -o")
    assert list(only_inputs.rows.role) == ["input"]
    with pytest.raises(UsageError, match="nothing to check"):
        ns.run_line_magic("nn_gradcheck", "Cube torch.arange(3)")


def test_nn_overfit_displays_a_panel_and_restores_the_model(ns):
    model = ns.user_ns["model"]
    snap = snapshot(model)
    result = ns.run_line_magic("nn_overfit", "model (x, y) nn.CrossEntropyLoss() -n 20 --optimizer opt -o")
    assert isinstance(result, OverfitResult) and result.passed
    assert result.optimizer.startswith("SGD(lr=0.05)")
    assert_same(model, snap)
    kept = ns.run_line_magic("nn_overfit", "model (x, y) nn.CrossEntropyLoss() --keep --target 0.5 -o")
    assert kept.kept and not torch.equal(model.state_dict()["0.weight"], snap[0]["0.weight"])


def test_nn_overfit_usage_errors(ns):
    with pytest.raises(UsageError, match="fewer than n=20"):
        ns.run_line_magic("nn_overfit", "model (x[:5], y[:5]) nn.CrossEntropyLoss()")
    with pytest.raises(UsageError, match="unrecognized arguments|required"):
        ns.run_line_magic("nn_overfit", "model --bogus")


def test_panel_follows_a_run_and_stop_ends_it():
    import nbdebug

    x, y = digits(200)
    panel = OverfitPanel(min_interval=0.0, max_overhead=1.0)
    assert panel.plot.value  # placeholder figure before the first epoch
    panel.stop_button.click()  # pressed before training: stops after the first epoch
    result = nbdebug.overfit(
        cnn(), (x, y), nn.CrossEntropyLoss(), lr=1e-6, max_epochs=50,
        callback=panel.update, should_stop=panel.should_stop,
    )  # fmt: skip
    assert result.stopped and result.epochs == 1
    assert panel.progress.value == 1.0 and panel.stop_button.description == "Stopped"
    assert "cannot overfit" in panel.title.value and "cannot-overfit" in panel.verdict.value
    before = panel.redraws
    panel.scale.value = "log"  # the toggle redraws the last curve, nothing is recomputed
    assert panel.redraws == before + 1
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "data:image/png;base64" in bundle["text/html"]


def test_panel_throttles_redraws():
    import nbdebug

    x, y = digits(200)
    panel = OverfitPanel(min_interval=3600.0)
    result = nbdebug.overfit(
        cnn(), (x, y), nn.CrossEntropyLoss(), target=0.0, max_epochs=300,
        callback=panel.update, should_stop=panel.should_stop,
    )  # fmt: skip
    assert result.epochs == 300 and not result.passed
    assert panel.redraws == 1  # only the final figure: the interval never elapsed
    assert panel.progress.value == 1.0 and "epoch 300" in panel.status.value


@pytest.mark.slow
def test_scale_toggle_during_a_run_redraws_at_the_next_epoch():
    import nbdebug

    x, y = digits(200)
    panel = OverfitPanel(min_interval=3600.0)
    toggled = []

    def callback(result):
        panel.update(result)
        if result.epochs == 3:
            panel.scale.value = "log"  # as a click on the toggle would, mid-run
            toggled.append(panel.redraws)
        if result.epochs == 4:
            toggled.append(panel.redraws)

    nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), target=-1, max_epochs=6, callback=callback)
    assert toggled[1] == toggled[0] + 1  # drawn by the loop's thread at epoch 4, not by the toggle's
