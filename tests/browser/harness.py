"""Real-browser harness: JupyterLab on a loopback port, Debian's Chromium driven by playwright.

A test writes a notebook of code cells, opens it in JupyterLab, runs every cell through JupyterLab's
own command (`notebook:run-all-cells`), and then clicks the rendered widgets like a user would.

Tests are good neighbours: `lab_page` (behind the `page` fixture) closes the page and then interrupts
and shuts down every kernel the server runs, pass or fail, so no kernel (or long run in one) outlives
its test; loops in cells wait on gates the test opens (`tests.browser.gates`), not on fixed sleeps.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server in a temporary root directory, stopped by `stop()`."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.token = uuid.uuid4().hex
        settings = root / ".settings"
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = dict(env, JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(root / ".ws"))
        self.log = open(root / "jupyterlab.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "jupyterlab", "--no-browser",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
                "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_root=True",
            ],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {(self.root / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("JupyterLab did not start within 120 s")

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name

    def url(self, name: str) -> str:
        return f"{self.base}/lab/tree/{name}?token={self.token}&reset"

    # -- the server's REST API --------------------------------------------------------------------------
    def api(self, path: str, method: str = "GET", timeout: float = 30.0) -> Any:
        """Call the Jupyter server's REST API (`/api/...`) with the token; the decoded JSON reply or None."""
        req = urllib.request.Request(
            f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        if method == "POST":
            req.data = b"{}"
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict]:
        """The kernels the server runs (`GET /api/kernels`)."""
        return self.api("/api/kernels")

    def sessions(self) -> list[dict]:
        """The notebook sessions the server knows (`GET /api/sessions`)."""
        return self.api("/api/sessions")

    def shutdown_kernels(self, timeout: float = 60.0) -> None:
        """Interrupt every kernel (a long run in a cell stops at once), delete every session (which shuts
        its kernel down), shut down any kernel left without one, and wait until the server lists none.

        Close the page first: an open notebook whose session disappears may start a new one. Every step
        is tried whatever the previous one did; a kernel still listed after `timeout` s raises.
        """
        deadline = time.monotonic() + timeout
        problems: list[str] = []

        def call(path: str, method: str) -> Any:
            try:
                return self.api(path, method, timeout=max(1.0, deadline - time.monotonic()))
            except urllib.error.HTTPError as e:
                if e.code != 404:  # gone in the meantime is fine
                    problems.append(f"{method} {path}: HTTP {e.code}")
            except OSError as e:
                problems.append(f"{method} {path}: {e}")
            return None

        for k in call("/api/kernels", "GET") or []:
            call(f"/api/kernels/{k['id']}/interrupt", "POST")
        for s in call("/api/sessions", "GET") or []:
            call(f"/api/sessions/{s['id']}", "DELETE")
        for k in call("/api/kernels", "GET") or []:
            call(f"/api/kernels/{k['id']}", "DELETE")
        left: list[dict] | None = None
        while time.monotonic() < deadline:
            left = call("/api/kernels", "GET")
            if left == []:
                return
            time.sleep(0.2)
        raise RuntimeError(f"kernels still running after {timeout} s: {left}; {problems}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@contextmanager
def lab_page(browser, lab: JupyterLab, height: int = 1000) -> Iterator[Any]:
    """A fresh Chromium page; on exit, pass or fail, the page is closed (so no notebook can start a
    kernel again) and every kernel of `lab` is interrupted and shut down."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        yield page
    finally:
        try:
            context.close()
        finally:
            lab.shutdown_kernels()


# the open notebook's kernel (JavaScript, in the page)
KERNEL = "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"


def wait_kernel_idle(page, timeout: float = 180_000) -> None:
    """Wait until the open notebook has a kernel and it is idle (started, nothing queued)."""
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=timeout,
    )


def open_notebook(page, lab: JupyterLab, name: str, cells: list[str], timeout: float = 180_000) -> None:
    """Write notebook `name` from `cells`, open it in JupyterLab and wait until its kernel is idle."""
    lab.write_notebook(name, cells)
    page.goto(lab.url(name))
    wait_kernel_idle(page, timeout)


def start_all_cells(page) -> None:
    """Run every cell through JupyterLab's command without waiting (its promise resolves at the end)."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def interrupt_kernel(page) -> None:
    """Interrupt the open notebook's kernel, as the toolbar's stop button does."""
    page.evaluate(f"() => {KERNEL}.interrupt()")


def cell_running(page, index: int) -> bool:
    """Whether cell `index` has no execution count yet, i.e. runs (or waits to): the kernel's status is
    no guide, comm traffic from the widgets flips it to 'idle' while a cell runs."""
    return page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount === null", index
    )


def wait_cell_done(page, index: int, timeout: float = 180_000) -> None:
    """Wait until cell `index` has an execution count: the kernel replied to it (ok or error)."""
    page.wait_for_function(
        "(i) => window.jupyterapp.shell.currentWidget.content.widgets[i].model.executionCount !== null",
        arg=index,
        timeout=timeout,
    )


def wait_all_done(page, n: int, timeout: float = 180_000) -> None:
    """Wait until all `n` cells have an execution count and the kernel is idle."""
    page.wait_for_function(
        f"""(n) => {{
            const cells = window.jupyterapp.shell.currentWidget.content.widgets;
            return cells.length === n && cells.every(c => c.model.executionCount !== null)
                && {KERNEL}.status === 'idle';
        }}""",
        arg=n,
        timeout=timeout,
    )


def wait_output(page, text: str, timeout: float = 60_000) -> None:
    """Wait until some output area of the open notebook shows `text`."""
    page.wait_for_function(
        "(t) => [...document.querySelectorAll('.jp-OutputArea-output')].some(e => e.innerText.includes(t))",
        arg=text,
        timeout=timeout,
    )


def wait_text(page, selector: str, text: str, timeout: float = 60_000) -> str:
    """Wait until the element at `selector` shows `text`, and return its text.

    Each widget syncs on its own comm message: right after one widget changed, another one the same
    redraw wrote may not have arrived yet, so a test reads a second widget through this, never directly.
    """
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
        arg=[selector, text],
        timeout=timeout,
    )
    return page.locator(selector).inner_text()


def shows_within(page, js: str, timeout: float) -> bool:
    """Whether the JavaScript predicate `js` becomes true within `timeout` ms (False instead of raising)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(js, timeout=timeout)
    except PlaywrightTimeout:
        return False
    return True


def open_and_run(page, lab: JupyterLab, name: str, cells: list[str], timeout: float = 180_000) -> None:
    """Open notebook `name` (written from `cells`) in JupyterLab and run all cells, waiting until idle."""
    open_notebook(page, lab, name, cells, timeout)
    start_all_cells(page)
    wait_all_done(page, len(cells), timeout)  # every cell has an execution count once the kernel is done


def cell_errors(page) -> list[str]:
    """Text of any error outputs in the open notebook (so a failing cell fails the test loudly)."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.innerText)",
    )


def kernel_stdout(page, code: str, timeout: float = 60_000, attempts: int = 20) -> str:
    """Run `code` in the open notebook's kernel (queued behind whatever runs) and return what it printed.

    Through the kernel connection, not a cell: after an interrupt, JupyterLab's run-cell command can race
    the notebook's own cleanup, while an execute request simply waits its turn. A request the kernel
    aborted is sent again: after a cell fails (an interrupt is a KeyboardInterrupt), ipykernel aborts
    every execute request already queued, including one sent just after the traceback was shown, before
    the kernel finished the failed cell's reply; an aborted request never ran, so sending it again is safe.
    """
    for _ in range(attempts):
        status, out = page.evaluate(
            """async ([code, timeout]) => {
                const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
                const future = kernel.requestExecute({code, store_history: false});
                let out = '';
                future.onIOPub = (msg) => {
                    if (msg.header.msg_type === 'stream') out += msg.content.text;
                    if (msg.header.msg_type === 'error') out += msg.content.ename + ': ' + msg.content.evalue;
                };
                const late = new Promise((_, reject) =>
                    setTimeout(() => reject(new Error(`no reply in ${timeout} ms; printed so far: ${out}`)), timeout));
                const reply = await Promise.race([future.done, late]);
                return [reply.content.status, out];
            }""",
            [code, timeout],
        )
        if status != "aborted":
            return out
        page.wait_for_timeout(250)
    raise AssertionError(f"the kernel aborted {attempts} execute requests in a row for {code!r}")
