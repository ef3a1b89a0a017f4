"""%%nn_watch in real JupyterLab + Chromium: the loss plot and a finding appear while the cell runs."""

from __future__ import annotations

from tests.browser.harness import cell_errors

SETUP = """
import time, torch, torch.nn.functional as F
from torch import nn
torch.set_num_threads(1)
torch.manual_seed(0)
%load_ext nbdebug
x, y = torch.randn(640, 20), torch.randint(0, 4, (640,))
dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
"""

# zero_grad() is missing; the sleep keeps the cell running long enough to look at it while it runs
CELL = """%%nn_watch model opt --every 2 --interval 0.3
for epoch in range(2):
    for xb, yb in dl:
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        time.sleep(0.4)
"""

# the training cell has no execution count yet: it is still running (the kernel's status is no guide,
# comm traffic from the widgets flips it to 'idle' while the cell runs)
RUNNING = "window.jupyterapp.shell.currentWidget.content.widgets[1].model.executionCount === null"


def test_live_panel_shows_loss_and_finding_while_running(page, lab):
    lab.write_notebook("watch_live.ipynb", [SETUP, CELL])
    page.goto(lab.url("watch_live.ipynb"))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=180_000,
    )
    # start the cells without awaiting the command's promise (it resolves only when they are done)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    # while the kernel is still busy with the training cell: a loss image and the finding are shown
    page.wait_for_function(
        f"""() => {{
            const img = document.querySelector('.nbdebug-watch-loss');
            const f = document.querySelector('.nbdebug-watch-findings');
            return img && img.src && img.naturalWidth > 0 && f
                && f.innerHTML.includes('data-code="grad-not-zeroed"')
                && document.querySelector('.nbdebug-watch-status [data-state="running"]') && {RUNNING};
        }}""",
        timeout=120_000,
    )
    status = page.inner_text(".nbdebug-watch-status")
    assert "running" in status
    # wait for the end, then open the update-ratio tab and read the final state
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-watch-status [data-state=\"finished\"]') !== null",
        timeout=120_000,
    )
    assert cell_errors(page) == []
    page.locator(".nbdebug-watch-tabs .lm-TabBar-tab", has_text="Update ratios").click()
    page.wait_for_function(
        "() => { const i = document.querySelector('.nbdebug-watch-ratios'); return i && i.naturalWidth > 0; }"
    )
    assert "step 40" in page.inner_text(".nbdebug-watch-status")
    assert "grad-not-zeroed" in page.inner_text(".nbdebug-watch-findings")
