"""`%nn_mem` through a real IPython shell, and the panel as a view over MemoryReport."""

from __future__ import annotations

import time

import pytest
import torch
from IPython.core.error import UsageError

from nbdebug.memory.api import memory
from nbdebug.memory.live import MemoryWatch
from nbdebug.memory.panel import MemoryPanel, WatchPanel
from nbdebug.memory.report import MemoryReport
from nbdebug.memory.step_result import StepMemory

SETUP = """
import torch
from torch import nn
mem_model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
mem_opt = torch.optim.Adam(mem_model.parameters())
mem_x, mem_y = torch.randn(10, 6), torch.randint(0, 3, (10,))
nn.functional.cross_entropy(mem_model(mem_x), mem_y).backward()
mem_opt.step()
mem_loss_fn = nn.CrossEntropyLoss()
"""


@pytest.fixture
def shell(ip):
    ip.run_cell(SETUP)
    yield ip
    for name in ("mem_model", "mem_opt", "mem_x", "mem_y", "mem_loss_fn"):
        ip.user_ns.pop(name, None)


def test_named_objects(shell):
    report = shell.run_line_magic("nn_mem", "mem_model mem_opt -o")
    assert isinstance(report, MemoryReport)
    names = set(report.to_frame()["name"])
    assert {"mem_model.0.weight", "mem_model.0.weight.grad", "mem_opt.state[0.weight].exp_avg_sq"} <= names
    roles = report.by_role()
    # Adam: exp_avg + exp_avg_sq per parameter, plus one 4-byte `step` tensor for each of the 4 parameters
    assert roles["optimizer state"] == 2 * roles["parameter"] + 4 * 4


def test_namespace_scan_and_all(shell):
    shell.run_cell(
        "def mem_make():\n    t = torch.zeros(77777)\n    return lambda: t\nmem_hidden = mem_make()"
    )
    report = shell.run_line_magic("nn_mem", "-o")
    frame = report.to_frame()
    assert {"mem_model.0.weight", "mem_x", "mem_y"} <= set(frame["name"])
    assert not (frame["shape"] == (77777,)).any()  # held by a closure only: no name reaches it
    everything = shell.run_line_magic("nn_mem", "--all -o").to_frame()
    hidden = everything[everything["shape"] == (77777,)]
    assert len(hidden) == 1 and not hidden["reachable"].iloc[0]
    for name in ("mem_make", "mem_hidden"):
        shell.user_ns.pop(name, None)


def test_panel_and_table_display(shell, capsys):
    assert shell.run_line_magic("nn_mem", "mem_model") is None
    shown = capsys.readouterr().out  # a terminal shell displays the panel's text/plain
    assert "mem_model.0.weight" in shown and "by role" in shown
    assert shell.run_line_magic("nn_mem", "mem_model --table") is None
    assert "mem_model.2.bias" in capsys.readouterr().out


def test_step_and_watch(shell):
    result = shell.run_line_magic(
        "nn_mem", "--step mem_model (mem_x,mem_y) mem_loss_fn mem_opt --budget 1MB -o"
    )
    assert isinstance(result, StepMemory) and result.budget == 2**20 and result.max_batch > 0
    w = shell.run_line_magic("nn_mem", "--watch --seconds 0.2 --interval 0.02 -o")
    assert isinstance(w, MemoryWatch)
    w.stop()
    assert not w.running and len(w.samples) >= 1


def test_usage_errors(shell):
    with pytest.raises(UsageError, match="'nope' is not defined"):
        shell.run_line_magic("nn_mem", "nope")
    with pytest.raises(UsageError, match="--top must be at least 1"):
        shell.run_line_magic("nn_mem", "--top 0")
    with pytest.raises(UsageError, match="--step needs MODEL BATCH LOSS_FN"):
        shell.run_line_magic("nn_mem", "--step mem_model")
    with pytest.raises(UsageError, match="scalar tensor"):
        shell.run_line_magic("nn_mem", "--step mem_model (mem_x,mem_y) 'lambda out, target: out'")
    with pytest.raises(UsageError, match="interval and seconds must be positive"):
        shell.run_line_magic("nn_mem", "--watch --seconds 0")


def test_docstring_documents_every_option(ip):
    doc = ip.find_line_magic("nn_mem").__doc__
    for option in (
        "--all",
        "--top",
        "--table",
        "--watch",
        "--seconds",
        "--interval",
        "--step",
        "--budget",
        "-o",
    ):
        assert option in doc


# ---------------------------------------------------------------- the panel


def make_panel():
    state = {"t": [torch.ones(10), torch.ones(1000)], "calls": 0}

    def refresh():
        state["calls"] += 1
        return memory(namespace={"t": state["t"]})

    panel = MemoryPanel(refresh(), refresh=refresh)
    return panel, state


def test_panel_sorts_filters_and_refreshes():
    panel, state = make_panel()
    assert list(panel.rows()["name"]) == ["t[1]", "t[0]"]  # largest first
    panel.sort_buttons["name"].click()
    assert list(panel.rows()["name"]) == ["t[0]", "t[1]"] and "data-sort='name'" in panel.table.value
    panel.sort_buttons["name"].click()
    assert list(panel.rows()["name"]) == ["t[1]", "t[0]"]
    state["t"].append(torch.ones(5000))
    panel.refresh_button.click()
    assert state["calls"] == 2 and "3 tensors" in panel.headline.value
    assert panel.rows()["name"].tolist()[0] == "t[2]"
    panel.role.value = "parameter"
    assert panel.rows().empty
    panel.role.value = "all"
    panel.top_n.value = 10
    assert len(panel.rows()) == 3
    assert panel.chart.value[:4] == b"\x89PNG"
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "<table" in bundle["text/html"]


def test_panel_watch_toggle_stops_itself():
    panel, _ = make_panel()
    panel._watch_seconds, panel._watch_interval = 0.2, 0.02
    panel.watch_toggle.value = True
    deadline = time.monotonic() + 5
    while panel.watch_toggle.value and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not panel.watch.running and not panel.watch_toggle.value
    assert "stopped" in panel.live_status.value and panel.live.value[:4] == b"\x89PNG"


def test_watch_panel_stop_button():
    w = MemoryWatch(interval=0.02, seconds=30).start()
    panel = WatchPanel(w)
    time.sleep(0.1)
    panel.stop_button.click()
    deadline = time.monotonic() + 5
    while w.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not w.running
    assert "stopped" in panel.status.value and panel.stop_button.disabled
