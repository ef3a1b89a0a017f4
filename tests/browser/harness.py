"""Real-browser harness: JupyterLab on a loopback port, Debian's Chromium driven by playwright.

A test writes a notebook of code cells, opens it in JupyterLab, runs every cell through JupyterLab's
own command (`notebook:run-all-cells`), and then clicks the rendered widgets like a user would.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

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

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def open_and_run(page, lab: JupyterLab, name: str, cells: list[str], timeout: float = 180_000) -> None:
    """Open notebook `name` (written from `cells`) in JupyterLab and run all cells, waiting until idle."""
    lab.write_notebook(name, cells)
    page.goto(lab.url(name))
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
        timeout=timeout,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # every cell has an execution count once the kernel is done with it
    page.wait_for_function(
        """(n) => {
            const p = window.jupyterapp.shell.currentWidget;
            const cells = p.content.widgets;
            return cells.length === n && cells.every(c => c.model.executionCount !== null)
                && p.sessionContext.session.kernel.status === 'idle';
        }""",
        arg=len(cells),
        timeout=timeout,
    )


def cell_errors(page) -> list[str]:
    """Text of any error outputs in the open notebook (so a failing cell fails the test loudly)."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.innerText)",
    )


def kernel_stdout(page, code: str, timeout: float = 60_000) -> str:
    """Run `code` in the open notebook's kernel (queued behind whatever runs) and return what it printed.

    Through the kernel connection, not a cell: after an interrupt, JupyterLab's run-cell command can race
    the notebook's own cleanup, while an execute request simply waits its turn.
    """
    return page.evaluate(
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
            await Promise.race([future.done, late]);
            return out;
        }""",
        [code, timeout],
    )
