"""%nn_search in real JupyterLab + Chromium: the live table fills while trials run in the background,
the Stop button stops the search after the running trial; a search run in the cell ends with its
findings, the best trial highlighted and the scatter drawn.

`slow`, the objective of the live tests, waits on a gate (not a sleep) before each trial: the test lets
a few trials run, looks at the panel while the next one is held, and then lets the search go on.
"""

from __future__ import annotations

import re

from tests.browser.gates import Gate
from tests.browser.harness import (
    cell_errors,
    cell_running,
    open_and_run,
    open_notebook,
    start_all_cells,
    wait_text,
)

SETUP = """
import math
import nbdebug
%load_ext nbdebug

def slow(lr, wd):
    gate.step()  # held until the test allows this trial
    return 1 - (math.log10(lr) + 2.5) ** 2

def fast(lr, wd):
    if lr > 2e-2:
        return float("nan")
    return 1 - (math.log10(lr) + 2.5) ** 2

space = {"lr": nbdebug.loguniform(1e-5, 1e-1), "wd": nbdebug.loguniform(1e-6, 1e-2)}
"""

# A stand-in for notebooks/07_search.ipynb's digits MLP with the same shape of response: accuracy peaks
# near lr=0.1, diverges (NaN) above lr=3, depends a little on width and not at all on weight decay.
STANDIN = """
import math, random
import nbdebug
%load_ext nbdebug

def train(lr, weight_decay, hidden):
    if lr > 3:
        return float("nan")  # diverged
    return 0.97 - 0.08 * (math.log10(lr) + 1) ** 2 - 0.01 * abs(math.log2(hidden) - 6) + random.gauss(0, 0.005)

space = {"lr": nbdebug.loguniform(1e-4, 10), "weight_decay": nbdebug.loguniform(1e-6, 1e-1),
         "hidden": nbdebug.intlog(8, 128)}
"""


def test_stop_button_stops_background_search(page, lab):
    gate = Gate(lab.root, "search_stop").reset()
    open_and_run(
        page,
        lab,
        "search_stop.ipynb",
        [SETUP + gate.code(), "panel = %nn_search slow space -n 200 --background -o"],
    )
    assert cell_errors(page) == []
    page.locator(".nbdebug-search").wait_for()
    # trials arrive while the kernel is idle: the table and the progress bar follow them live
    gate.allow_and_wait(2)  # two trials done, the third one held
    page.wait_for_function(
        "() => document.querySelectorAll('.nbdebug-search-table tr.nbdebug-status-ok').length >= 2",
        timeout=60_000,
    )
    stop = page.locator(".nbdebug-search-stop")
    assert stop.is_enabled()
    stop.click()
    page.wait_for_function(  # the click reached the kernel: the search stops after the running trial
        "() => document.querySelector('.nbdebug-search-stop').innerText.includes('Stopping')", timeout=60_000
    )
    gate.open()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-search-stop').innerText.includes('Stopped')", timeout=60_000
    )
    header = wait_text(page, ".nbdebug-search-header", "stopped by stop")
    run = int(re.search(r"Random search: (\d+)/200 trials run", header).group(1))
    assert 2 <= run < 20
    page.wait_for_function(  # the table is its own widget: its last row may follow the header
        "(n) => document.querySelectorAll('.nbdebug-search-table tbody tr').length === n", arg=run
    )
    assert page.locator(".nbdebug-search-table tr.nbdebug-best").count() == 1
    page.locator(".nbdebug-search-plot").wait_for()  # the scatter was drawn


def test_foreground_search_shows_findings_and_failed_rows(page, lab, gallery):
    open_and_run(page, lab, "search_fg.ipynb", [STANDIN, "%nn_search train space -n 40"])
    assert cell_errors(page) == []
    panel = page.locator(".nbdebug-search")
    panel.wait_for()
    assert page.locator(".nbdebug-search-stop").inner_text().strip() == "Done"
    assert page.locator(".nbdebug-search-table tbody tr").count() == 40
    failed = page.locator(".nbdebug-search-table tr.nbdebug-status-failed")
    assert failed.count() >= 1 and "score is nan" in failed.first.inner_text()
    findings = page.locator(".nbdebug-search-findings").inner_text()
    assert "search-trials-failed" in findings and "every failure has lr >=" in findings
    assert "search-flat-parameter weight_decay" in findings and "flat-parameter hidden" not in findings
    best = page.locator(".nbdebug-search-table tr.nbdebug-best").inner_text()
    assert "ok" in best
    page.locator(".nbdebug-search-plot").wait_for()
    gallery(panel, "search_panel")


def test_foreground_search_updates_live_while_the_cell_runs(page, lab):
    """Widget updates travel on iopub while the cell blocks: rows appear before the kernel is idle."""
    gate = Gate(lab.root, "search_live").reset()
    open_notebook(page, lab, "search_live.ipynb", [SETUP + gate.code(), "%nn_search slow space -n 25"])
    start_all_cells(page)
    gate.allow_and_wait(3)  # three trials done, the fourth one held
    page.wait_for_function(
        "() => document.querySelectorAll('.nbdebug-search-table tr.nbdebug-status-ok').length >= 3",
        timeout=60_000,
    )
    assert cell_running(page, 1)  # the search is still running in the cell
    assert page.locator(".nbdebug-search-stop").is_disabled()  # in-cell search: interrupt the kernel instead
    gate.open()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-search-stop').innerText.includes('Done')", timeout=120_000
    )
    assert page.locator(".nbdebug-search-table tbody tr").count() == 25
