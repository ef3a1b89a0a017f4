"""%%nn_watch in real JupyterLab + Chromium: the loss plot and a finding appear while the cell runs.

The loop waits on a gate before each step (no sleep keeping the cell running): the test lets it run one
step at a time until the panel shows what it must while the cell runs, then lets it run to the end.
"""

from __future__ import annotations

from tests.browser.gates import Gate
from tests.browser.harness import (
    cell_errors,
    cell_running,
    open_notebook,
    shows_within,
    start_all_cells,
    wait_text,
)

SETUP = """
import torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(1)
torch.manual_seed(0)
%load_ext nbdebug
x, y = torch.randn(640, 20), torch.randint(0, 4, (640,))
dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
"""

# zero_grad() is missing; the gate holds the loop before each step until the test allows it
CELL = """%%nn_watch model opt --every 2 --interval 0.3
for epoch in range(2):
    for xb, yb in dl:
        gate.step()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
"""
STEPS = 40  # 2 epochs of 20 batches

# a loss image and the finding are shown, the status says running
LIVE = """() => {
    const img = document.querySelector('.nbdebug-watch-loss');
    const f = document.querySelector('.nbdebug-watch-findings');
    return Boolean(img && img.src && img.naturalWidth > 0 && f
        && f.innerHTML.includes('data-code="grad-not-zeroed"')
        && document.querySelector('.nbdebug-watch-status [data-state="running"]'));
}"""


def test_live_panel_shows_loss_and_finding_while_running(page, lab, gallery):
    gate = Gate(lab.root, "watch_live").reset()
    open_notebook(page, lab, "watch_live.ipynb", [SETUP + gate.code(), CELL])
    start_all_cells(page)
    # one step at a time: the panel redraws its figures at most every 0.3 s (and ~10% of the time),
    # so the loss image shows after a few steps held by the gate; the finding comes at the first leak
    step = 0
    while True:
        step += 1
        gate.allow_and_wait(step)
        if shows_within(page, LIVE, 1_000):
            break
        assert step < STEPS - 1, "the loss image and the finding never showed while the loop ran"
    # the loop is held before its next step: the cell is still running
    assert cell_running(page, 1)
    status = page.inner_text(".nbdebug-watch-status")
    assert "running" in status
    # let it run to the end, then open the update-ratio tab and read the final state
    gate.open()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-watch-status [data-state=\"finished\"]') !== null",
        timeout=120_000,
    )
    assert cell_errors(page) == []
    page.locator(".nbdebug-watch-tabs .lm-TabBar-tab", has_text="Update ratios").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('.nbdebug-watch-ratios'); return i && i.naturalWidth > 0; }"
    )
    assert f"step {STEPS}" in page.inner_text(".nbdebug-watch-status")
    wait_text(page, ".nbdebug-watch-findings", "grad-not-zeroed")
    gallery(page.locator(".nbdebug-watch-panel"), "watch_dashboard")
