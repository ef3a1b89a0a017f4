"""In real Chromium: the %%nn_gan panel's sample grid refreshes while the training cell is still running,
the findings appear live, and the frame slider steps back through earlier grids afterwards."""

from __future__ import annotations

import time

from tests.browser.harness import cell_errors

SETUP = """
import time, torch
from torch import nn
from tests import gan_loops as L
torch.set_num_threads(1)
torch.manual_seed(0)
%load_ext nbdebug
x = L.mixture()
netD, netG = L.mlp_d(), L.mlp_g()
optD, optG = L.adam(netD), L.adam(netG)
bce = nn.BCEWithLogitsLoss()
"""

TRAIN = """%%nn_gan netD netG optD optG --samples-every 10 --interval 0.2
for real in L.batches(x, 64, 300):
    optD.zero_grad()
    fake = netG(torch.randn(64, 8))
    (bce(netD(real), torch.ones(64, 1)) + bce(netD(fake.detach()), torch.zeros(64, 1))).backward()
    optD.step()
    # optG.zero_grad() forgotten
    bce(netD(fake), torch.ones(64, 1)).backward()
    optG.step()
    time.sleep(0.06)  # a slower model: the panel refreshes while the cell runs
"""

READ = """() => {
    const label = document.querySelector('.nbdebug-gan-samples-step [data-step]');
    const img = document.querySelector('img.nbdebug-gan-samples');
    const state = document.querySelector('.nbdebug-gan-state');
    const findings = document.querySelector('.nbdebug-gan-findings');
    return {
        step: label ? label.getAttribute('data-step') : null,
        src: img ? img.getAttribute('src') : null,
        state: state ? state.getAttribute('data-state') : null,
        findings: findings ? findings.innerText : '',
    };
}"""


def test_sample_grid_refreshes_during_the_cell(page, lab, gallery):
    lab.write_notebook("gan_live.ipynb", [SETUP, TRAIN])
    page.goto(lab.url("gan_live.ipynb"))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=180_000,
    )
    # not awaited: evaluate() would wait for the returned promise, i.e. for every cell to finish
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.locator(".nbdebug-gan-panel").wait_for(timeout=120_000)

    seen_running: list[dict] = []
    deadline = time.monotonic() + 240
    last = None
    while time.monotonic() < deadline:
        last = page.evaluate(READ)
        if last["state"] == "running" and last["step"] is not None:
            seen_running.append(last)
        if last["state"] == "finished":
            break
        time.sleep(0.25)
    assert last is not None and last["state"] == "finished", last
    assert cell_errors(page) == []

    # while the cell ran: at least two different grids, from later and later G steps
    steps = [int(s["step"]) for s in seen_running]
    srcs = {s["src"] for s in seen_running}
    assert len(set(steps)) >= 2 and len(srcs) >= 2, steps
    assert steps == sorted(steps)
    # the missing optG.zero_grad() was named live, before the run ended
    assert any("grad-not-zeroed" in s["findings"] and "optG" in s["findings"] for s in seen_running)
    # at the end the grid is the last frame; the slider steps back to the first
    assert last["step"] == "300"
    gallery(page.locator(".nbdebug-gan-panel"), "gan_dashboard")
    slider = page.locator(".nbdebug-gan-frame")
    slider.locator(".noUi-handle, .slider-handle, [role=slider]").first.focus()
    page.keyboard.press("Home")
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-gan-samples-step [data-step]').getAttribute('data-step') === '1'"
    )
