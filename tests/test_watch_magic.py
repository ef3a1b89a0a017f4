"""%%nn_watch through a real IPython shell, and the panel as a view over a Watch."""

from __future__ import annotations

import pytest
import torch
from IPython.core.error import UsageError

import nbdebug
from nbdebug._core import intercept as _intercept
from nbdebug._core.hooks import hook_counts
from nbdebug.monitor.panel import WatchPanel, watch_panel
from tests.watch_loops import digits, loader, mlp, single_thread  # noqa: F401  (autouse fixture)

SETUP = """
import torch, torch.nn.functional as F
from torch import nn
from tests.watch_loops import digits, loader, mlp
torch.manual_seed(0)
x, y = digits()
dl = loader(x[:320], y[:320])
model = mlp()
opt = torch.optim.SGD(model.parameters(), lr=0.05)
criterion = nn.CrossEntropyLoss()
"""

LOOP = """
for epoch in range(3):
    for xb, yb in dl:
        {zero}
        loss = criterion(model(xb), yb)
        loss.backward()
        opt.step()
"""


@pytest.mark.parametrize("bug", [True, False])
def test_cell_magic_names_the_bug(ip, bug):
    ip.run_cell(SETUP).raise_error()
    before = hook_counts(ip.user_ns["model"])
    cell = LOOP.format(zero="pass" if bug else "opt.zero_grad()")
    w = ip.run_cell_magic("nn_watch", "model opt --loss criterion --every 5 --no-panel -o", cell)
    assert isinstance(w, nbdebug.Watch)
    assert w.steps == 15 and list(w.epochs["steps"]) == [5, 5, 5]
    assert ("grad-not-zeroed" in {f.code for f in w.findings}) is bug
    assert hook_counts(ip.user_ns["model"]) == before and not _intercept.installed()


def test_cell_magic_with_panel_and_exception(ip):
    ip.run_cell(SETUP).raise_error()
    cell = LOOP.format(zero="opt.zero_grad()") + "\nraise ValueError('boom in the loop')"
    with pytest.raises(ValueError, match="boom in the loop"):
        ip.run_cell_magic("nn_watch", "model opt --save run", cell)
    w = ip.user_ns["run"]
    assert w.steps == 15 and w.exc_type is ValueError and "stopped by ValueError" in w.summary()
    assert not _intercept.installed()
    assert hook_counts(ip.user_ns["model"]) == {}


def test_cell_magic_usage_errors(ip):
    ip.run_cell(SETUP).raise_error()
    with pytest.raises(UsageError, match="'nope' is not defined"):
        ip.run_cell_magic("nn_watch", "nope opt", "pass")
    with pytest.raises(UsageError, match="nn.Module as model, got Tensor"):
        ip.run_cell_magic("nn_watch", "x opt", "pass")
    with pytest.raises(UsageError, match="every must be a positive"):
        ip.run_cell_magic("nn_watch", "model opt --every 0", "pass")
    with pytest.raises(UsageError, match="--save needs a variable name"):
        ip.run_cell_magic("nn_watch", "model opt --save 1x", "pass")
    with pytest.raises(UsageError, match="torch.optim.Optimizer, got CrossEntropyLoss"):
        ip.run_cell_magic("nn_watch", "model criterion", "pass")


def test_magic_docstring_documents_every_option(ip):
    doc = ip.find_cell_magic("nn_watch").__doc__
    for opt in ("--loss", "--every", "--no-histograms", "--interval", "--no-panel", "--save", "-o"):
        assert opt in doc


def test_panel_is_a_view_that_follows_the_run():
    x, y = digits()
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w = nbdebug.watch(model, opt, every=2, update_interval=0.0)
    panel = watch_panel(w)
    assert isinstance(panel, WatchPanel) and bytes(panel.loss_img.value) == b""
    with w:
        for _ in range(2):
            for xb, yb in loader(x[:256], y[:256]):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
    panel.finish()
    assert panel.redraws >= 3  # live redraws happened during the loop, not only at the end
    assert bytes(panel.loss_img.value).startswith(b"\x89PNG")
    assert 'data-state="finished"' in panel.status.value and "step 8" in panel.status.value
    assert list(panel.layer.options) == w.layers() == ["0", "1", "2", "3", "4"]
    panel.layer.value = "1"
    panel.kind.value = "gradient"  # a ReLU has no parameters: no gradient histogram, says so
    panel.kind.value = "activation"
    assert list(panel.step.options) == [1, 2, 4, 6, 8]  # histograms: the first step, then every 2nd
    first = bytes(panel.hist_img.value)
    panel.step.value = 2
    assert bytes(panel.hist_img.value) != first
    panel.tabs.selected_index = 1
    assert bytes(panel.ratio_img.value).startswith(b"\x89PNG")
    panel.scale.value = "log"
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "No findings" in bundle["text/html"] and "data:image/png;base64," in bundle["text/html"]
