"""In real Chromium: the %%nn_gan panel's sample grid refreshes while the training cell is still running,
the findings appear live, and the frame slider steps back through earlier grids afterwards.

The loop waits on a gate before each step (no sleep making it "slower"): the test lets it run to a
sample step, looks at the panel while the loop is held there, and lets it run to the end once it has
seen two grids and the finding.
"""

from __future__ import annotations

from tests.browser.gates import Gate
from tests.browser.harness import cell_errors, open_notebook, start_all_cells, wait_cell_done

SETUP = """
import torch
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
    gate.step()  # held until the test allows this step
    optD.zero_grad()
    fake = netG(torch.randn(64, 8))
    (bce(netD(real), torch.ones(64, 1)) + bce(netD(fake.detach()), torch.zeros(64, 1))).backward()
    optD.step()
    # optG.zero_grad() forgotten
    bce(netD(fake), torch.ones(64, 1)).backward()
    optG.step()
"""
STEPS, SAMPLES_EVERY = 300, 10

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
        status: state ? state.innerText : '',
    };
}"""


def _shown_at(page, g_step: int) -> dict:
    """The panel as the browser shows it once the refresh the loop made at `g_step` arrived (its status
    line, written last in a refresh, says so); the loop is held after that step."""
    page.wait_for_function(
        f"(g) => {{ const m = ({READ})().status.match(/G step (\\d+)/); return m !== null && +m[1] === g; }}",
        arg=g_step,
        timeout=60_000,
    )
    return page.evaluate(READ)


def test_sample_grid_refreshes_during_the_cell(page, lab, gallery):
    gate = Gate(lab.root, "gan_live").reset()
    open_notebook(page, lab, "gan_live.ipynb", [SETUP + gate.code(), TRAIN])
    start_all_cells(page)
    page.locator(".nbdebug-gan-panel").wait_for(timeout=120_000)

    # to the first sample grid (G step 1), then one sample step (a new frame) at a time. The panel draws
    # a new frame at once unless its redraw budget is spent (the next draw waits 10x as long as the
    # last one took: ~1 s for the first grid of a fresh kernel on a loaded machine); holding the loop a
    # little longer each time the grid did not change lets that wall-clock budget recover
    seen_running: list[dict] = []
    g, held = 1, 0.0
    while True:
        gate.allow_and_wait(g)
        shown = _shown_at(page, g)
        assert shown["state"] == "running", shown
        seen_running.append(shown)
        grids = {s["step"] for s in seen_running if s["step"] is not None}
        named = any("grad-not-zeroed" in s["findings"] and "optG" in s["findings"] for s in seen_running)
        if (len(grids) >= 2 and named) or g + SAMPLES_EVERY >= STEPS:
            break
        held += 0.25
        page.wait_for_timeout(held * 1000)
        g = (g // SAMPLES_EVERY + 1) * SAMPLES_EVERY
    gate.open()

    # the end is the cell's reply, not the status: the status says "finished" from the refresh in
    # GanWatch.__exit__, which may leave the grid to the panel's final rendering (finish(), after it);
    # the kernel replies after that, and the browser applies the widget updates before the reply
    wait_cell_done(page, 1, timeout=240_000)
    # the reply and the widget updates travel on different channels: wait for the final frame to show
    page.wait_for_function(
        f"(n) => {{ const r = ({READ})(); return r.state === 'finished' && r.step === String(n); }}",
        arg=STEPS,
        timeout=60_000,
    )
    last = page.evaluate(READ)
    assert last["state"] == "finished", last
    assert cell_errors(page) == []

    # while the cell ran: at least two different grids, from later and later G steps
    steps = [int(s["step"]) for s in seen_running if s["step"] is not None]
    srcs = {s["src"] for s in seen_running if s["step"] is not None}
    assert len(set(steps)) >= 2 and len(srcs) >= 2, steps
    assert steps == sorted(steps)
    # the missing optG.zero_grad() was named live, before the run ended
    assert any("grad-not-zeroed" in s["findings"] and "optG" in s["findings"] for s in seen_running)
    # at the end the grid is the last frame; the slider steps back to the first
    assert last["step"] == str(STEPS)
    gallery(page.locator(".nbdebug-gan-panel"), "gan_dashboard")
    slider = page.locator(".nbdebug-gan-frame")
    slider.locator(".noUi-handle, .slider-handle, [role=slider]").first.focus()
    page.keyboard.press("Home")
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-gan-samples-step [data-step]').getAttribute('data-step') === '1'"
    )
