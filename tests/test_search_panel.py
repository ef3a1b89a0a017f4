"""The live search panel (an observer of nbdebug.search) and `%nn_search` through a real IPython shell."""

from __future__ import annotations

import math
import threading
import time

import pytest
import torch
from IPython.core.error import UsageError

import nbdebug
from nbdebug.search.panel import SearchPanel, live_search
from nbdebug.search.result import SearchResult
from nbdebug.search.run import search

pytestmark = pytest.mark.slow  # IPython shells and panels: `make test` runs them, `make check` does not

SPACE = {"lr": nbdebug.loguniform(1e-5, 1e-1), "wd": nbdebug.loguniform(1e-6, 1e-2)}


def score(lr: float, wd: float = 0.0) -> float:
    if lr > 2e-2:  # "diverges"
        return float("nan")
    return 1.0 - (math.log10(lr) - math.log10(3e-3)) ** 2 + 0.01 * torch.randn(()).item()


def test_panel_follows_the_search_live():
    panel = SearchPanel()
    seen = []

    def spy(result, trial):  # runs after the panel's own on_trial_end
        seen.append((panel.progress.value, f'data-trial="{trial.index}"' in panel.table.value))

    result = search(score, SPACE, trials=12, observers=[panel, spy])
    assert seen == [(i + 1, True) for i in range(12)]
    assert panel.result is result and panel.progress.max == 12
    assert panel.stop.disabled and panel.stop.description == "Done"
    assert panel.plot.value[:4] == b"\x89PNG" and panel.plot.layout.display is None
    assert "nbdebug-best" in panel.table.value and "nbdebug-status-failed" in panel.table.value
    assert 'data-code="search-trials-failed"' in panel.findings.value
    assert f"best: trial {result.best.index}" in panel.header.value
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "data:image/png;base64" in bundle["text/html"] and "best: trial" in bundle["text/plain"]


def test_foreground_panel_stop_is_disabled_with_reason():
    panel = SearchPanel()
    assert panel.stop.disabled and "interrupt the kernel" in panel.stop.tooltip


def test_background_stop_button_stops_after_running_trial():
    started = threading.Event()

    def slow(lr, wd):
        started.set()
        time.sleep(0.05)
        return score(lr)

    panel = live_search(slow, SPACE, trials=200, background=True, display=lambda _: None)
    assert not panel.stop.disabled
    assert started.wait(10)
    panel.stop.click()
    result = panel.wait(30)
    assert result.stopped_by == "stop" and 1 <= len(result.completed) < 200
    assert panel.stop.description == "Stopped" and panel.progress.bar_style == "warning"
    assert "stopped by stop" in panel.header.value


def test_background_contract_error_shown_in_panel():
    panel = live_search(lambda lr, wd: None, SPACE, trials=3, background=True, display=lambda _: None)
    assert panel.wait(30) is not None
    assert "NbdebugError: train_fn returned NoneType None" in panel.error
    assert "search failed" in panel.header.value


# -- the magic -------------------------------------------------------------------------------------------------


def test_magic_registered_and_documented(ip):
    assert "nn_search" in ip.magics_manager.magics["line"]
    doc = ip.magics_manager.magics["line"]["nn_search"].__doc__
    for option in (
        "--trials",
        "--seed",
        "--metric",
        "--mode",
        "--timeout",
        "--background",
        "--table",
        "--output",
    ):
        assert option in doc


def test_magic_returns_result_with_o(ip, capsys):
    ip.user_ns.update(train=score, space=SPACE)
    result = ip.run_line_magic("nn_search", "train space -n 8 -s 3 -o")
    assert isinstance(result, SearchResult) and result.planned == 8 and result.seed == 3
    again = search(score, SPACE, trials=8, seed=3)
    assert [t.params for t in result.trials] == [t.params for t in again.trials]
    assert ip.run_line_magic("nn_search", "train space -n 4 --table") is None
    assert "Random search: 4/4 trials run" in capsys.readouterr().out


@pytest.mark.slow
def test_magic_metric_mode_and_background(ip):
    ip.user_ns.update(train2=lambda lr, wd: {"val_loss": lr, "acc": -lr}, space=SPACE)
    result = ip.run_line_magic("nn_search", "train2 space -n 5 -m acc --mode min -o")
    assert result.metric == "acc" and result.mode == "min"
    panel = ip.run_line_magic("nn_search", "train2 space -n 5 --background -o")
    assert isinstance(panel, SearchPanel)
    assert panel.wait(30).metric == "val_loss"


@pytest.mark.parametrize(
    "line, match",
    [
        ("nope space", "train_fn 'nope' is not defined"),
        ("train nospace", "space 'nospace' is not defined"),
        ("train badspace", r"space\['lr'\] is float 0.01"),
        ("train space -n 0", "trials must be a positive int, got 0"),
        ("train space --background --table", "--background needs the live panel"),
        ("none_fn space", "train_fn returned NoneType None"),
    ],
)
def test_magic_usage_errors(ip, line, match):
    ip.user_ns.update(train=score, space=SPACE, badspace={"lr": 0.01}, none_fn=lambda lr, wd: None)
    with pytest.raises(UsageError, match=match):
        ip.run_line_magic("nn_search", line)
