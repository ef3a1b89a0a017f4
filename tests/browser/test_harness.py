"""The harness itself: a plain ipywidgets button renders and reacts to a click in real Chromium; a test's
kernels (and a long run in one) do not outlive it, whether it passes or fails."""

import time
from pathlib import Path

import pytest

from tests.browser.gates import Gate
from tests.browser.harness import (
    cell_errors,
    cell_running,
    lab_page,
    open_and_run,
    open_notebook,
    start_all_cells,
    wait_cell_done,
)


def test_widget_renders_and_clicks(page, lab):
    cells = [
        "import ipywidgets as w\nb = w.Button(description='hello')\nb.add_class('probe-button')\n"
        "b.on_click(lambda _: setattr(b, 'description', 'clicked'))\nb",
    ]
    open_and_run(page, lab, "harness_probe.ipynb", cells)
    assert cell_errors(page) == []
    button = page.locator(".probe-button")
    button.wait_for()
    button.click()
    page.wait_for_function("() => document.querySelector('.probe-button').innerText.includes('clicked')")


def _gone(pid: int, timeout: float = 30.0) -> bool:
    """Whether process `pid` ends (or is only a zombie) within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("outcome", ["passes", "fails"])
def test_no_kernel_outlives_its_test(browser, lab, outcome):
    """A test-like run: two notebooks (two kernels), one of them in a run that never ends by itself (a
    loop held by a gate nobody opens, like an overfit run with a 240 s budget); when the page's block
    ends, normally or by an exception, the server lists no kernel and no session and the processes are
    gone."""
    assert lab.kernels() == [], "an earlier test left kernels running"
    gate = Gate(lab.root, f"harness_long_{outcome}").reset()
    pids: list[int] = []

    def run() -> None:
        with lab_page(browser, lab) as page:
            for name in ("a", "b"):
                pid_file = lab.root / f"harness_{outcome}_{name}.pid"
                cells = [f"import os, pathlib\npathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))"]
                if name == "b":
                    cells.append(gate.code() + "while True:\n    gate.step()")
                open_notebook(page, lab, f"harness_{outcome}_{name}.ipynb", cells)
                start_all_cells(page)
                wait_cell_done(page, 0)
                pids.append(int(pid_file.read_text()))
            gate.wait_held(0)  # the endless loop runs (held before its first step)
            assert cell_running(page, 1)
            assert len(lab.kernels()) == 2
            if outcome == "fails":
                raise RuntimeError("the test failed while its cell was running")

    if outcome == "fails":
        with pytest.raises(RuntimeError, match="the test failed"):
            run()
    else:
        run()
    assert lab.kernels() == [] and lab.sessions() == []
    assert len(set(pids)) == 2 and all(_gone(pid) for pid in pids), pids
