"""%nn_overfit in JupyterLab: the curve updates while the cell runs, Stop ends the run, the model is restored.

Both runs have a 240 s budget and only end when stopped; a test that fails before stopping its run does
not leave it running: the `page` fixture interrupts and shuts down the kernel when the test ends.
"""

from __future__ import annotations

from tests.browser.harness import (
    cell_errors,
    interrupt_kernel,
    kernel_stdout,
    open_notebook,
    start_all_cells,
    wait_cell_done,
    wait_output,
    wait_text,
)

SETUP = """
import torch
from torch import nn
from sklearn.datasets import load_digits
%load_ext nbdebug
torch.manual_seed(0)
torch.set_num_threads(1)
d = load_digits()
x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) - 4.88) / 6.02
y = torch.tensor(d.target)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
w0 = model[1].weight.detach().clone()
"""
# a target below zero and a 240 s budget: the run only ends when Stop is pressed
RUN = "%nn_overfit model (x, y) nn.CrossEntropyLoss() --target -1 --epochs 10000000 --time 240 --lr 1e-4"
AFTER = "print('restored:', torch.equal(model[1].weight, w0))"


def _epoch(page) -> int:
    text = page.locator(".nbdebug-overfit-status").inner_text()
    return int(text.split(",")[0].removeprefix("epoch ").strip()) if text.startswith("epoch") else 0


def test_overfit_curve_updates_and_stop_ends_the_run(page, lab, gallery):
    open_notebook(page, lab, "sanity_overfit.ipynb", [SETUP, RUN, AFTER])
    start_all_cells(page)

    # the panel appears and its curve is redrawn while the cell is still running
    page.locator(".nbdebug-overfit-status").wait_for(timeout=120_000)
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-overfit-status')?.innerText || '').startsWith('epoch')",
        timeout=60_000,
    )
    plot = page.locator("img.nbdebug-overfit-plot")
    first_src = plot.get_attribute("src")
    first_epoch = _epoch(page)
    page.wait_for_function(
        "(src) => document.querySelector('img.nbdebug-overfit-plot').getAttribute('src') !== src",
        arg=first_src,
        timeout=60_000,
    )
    # the text and the figure redraw on their own throttles (and sync as separate widget messages): the
    # figure can change while the status still shows the same epoch, so wait for the epoch as well
    page.wait_for_function(
        "(first) => { const t = document.querySelector('.nbdebug-overfit-status')?.innerText || '';"
        " return t.startsWith('epoch') && parseInt(t.slice(6)) > first; }",
        arg=first_epoch,
        timeout=60_000,
    )
    assert _epoch(page) > first_epoch
    page.locator(".nbdebug-overfit-scale button", has_text="log").click()  # answered mid-run, too

    # Stop is handled while the cell runs; the verdict follows and the next cell runs
    page.locator(".nbdebug-overfit-stop").click()
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-overfit-stop')?.innerText || '').includes('Stopped')",
        timeout=30_000,
    )
    # each widget syncs on its own message: wait for the verdict rather than race it
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-overfit-verdict')?.innerText || '').includes('cannot-overfit')",
        timeout=30_000,
    )
    title = wait_text(page, ".nbdebug-overfit-title", "stopped by the user")
    assert "cannot overfit" in title
    gallery(page.locator(".nbdebug-overfit"), "overfit_panel")
    wait_output(page, "restored:")
    outputs = page.eval_on_selector_all(".jp-OutputArea-output", "els => els.map(e => e.innerText)")
    assert any("restored: True" in o for o in outputs), outputs
    assert cell_errors(page) == []


def test_kernel_interrupt_restores_the_model_and_says_so(page, lab):
    open_notebook(page, lab, "sanity_interrupt.ipynb", [SETUP, RUN, AFTER])
    start_all_cells(page)
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-overfit-status')?.innerText || '').startsWith('epoch')",
        timeout=120_000,
    )
    interrupt_kernel(page)
    page.wait_for_function(
        "() => (document.querySelector('.nbdebug-overfit-title')?.innerText || '').includes('interrupted')",
        timeout=60_000,
    )
    wait_text(page, ".nbdebug-overfit-title", "model restored")
    wait_output(page, "KeyboardInterrupt", timeout=30_000)  # the interrupt still reaches the user
    # run-all stopped at the interrupted cell (the kernel aborted the queued AFTER cell); once the kernel
    # replied to the interrupted cell, ask it directly (kernel_stdout sends again a request the kernel
    # aborted because it arrived while it was still aborting the cells queued behind the failed one)
    wait_cell_done(page, 1, timeout=60_000)
    assert kernel_stdout(page, AFTER).strip() == "restored: True"
