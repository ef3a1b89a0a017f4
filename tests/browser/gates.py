"""Gates between a browser test and the loop in a cell it runs: the test decides when the loop moves on.

A live panel is only worth testing while the cell still runs, and a fixed `time.sleep` in the loop only
makes that likely: on a loaded machine the cell can still end before the test has looked, and on an idle
one the test waits for nothing. Instead the loop calls `gate.step()` before each step, which blocks until
the test has allowed that step; the test lets the loop run step by step or in chunks (`allow(n)`), knows
when it is held (`wait_held(n)`: steps 1..n are done and step n+1 waits), looks at the page, and finally
lets it run to the end (`open()`).

Both sides use this class: the test makes a `Gate` in JupyterLab's root and puts `gate.code()` in a
cell, which makes the same gate in the kernel. The state lives in two small files (the number of steps
allowed, written by the test; the step the loop waits at, written by the kernel), replaced atomically.
A loop that is never released gives up after `timeout` seconds with an error instead of running on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

POLL_S = 0.01
OPEN = 1 << 62  # "every step": more than any loop runs


class GateTimeout(TimeoutError):
    pass


def _write(path: Path, value: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(str(value))
    os.replace(tmp, path)


def _read(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


class Gate:
    def __init__(self, directory: str | os.PathLike, name: str, timeout: float = 300.0) -> None:
        self.directory = Path(directory)
        self.name = name
        self.timeout = timeout
        self.allowed_path = self.directory / f"{name}.gate-allowed"
        self.held_path = self.directory / f"{name}.gate-held"
        self.steps = 0  # kernel side: steps started so far

    # -- test side ------------------------------------------------------------------------------------
    def code(self, var: str = "gate") -> str:
        """Python source that makes this gate in the kernel as `var` (and nothing else)."""
        return (
            f"from tests.browser.gates import Gate as _Gate\n"
            f"{var} = _Gate({str(self.directory)!r}, {self.name!r}, timeout={self.timeout!r})\n"
        )

    def reset(self) -> Gate:
        """Nothing allowed, nothing held (call before the cell runs)."""
        _write(self.allowed_path, 0)
        _write(self.held_path, 0)
        return self

    def allow(self, n: int) -> None:
        """Steps 1..n may run (never takes back what was allowed)."""
        _write(self.allowed_path, max(n, _read(self.allowed_path)))

    def open(self) -> None:
        """Every remaining step may run: the loop runs to its end."""
        _write(self.allowed_path, OPEN)

    @property
    def held_at(self) -> int:
        """The step the loop waits at (0: not waiting yet)."""
        return _read(self.held_path)

    def wait_held(self, n: int, timeout: float = 120.0) -> None:
        """Wait until steps 1..n are done and the loop waits before step n + 1."""
        deadline = time.monotonic() + timeout
        while self.held_at < n + 1:
            if time.monotonic() > deadline:
                raise GateTimeout(
                    f"gate {self.name}: the loop did not reach step {n + 1} within {timeout} s "
                    f"(it waits at {self.held_at}, {_read(self.allowed_path)} allowed)"
                )
            time.sleep(POLL_S)

    def allow_and_wait(self, n: int, timeout: float = 120.0) -> None:
        """Let the loop run up to step n and wait until it is held before step n + 1."""
        self.allow(n)
        self.wait_held(n, timeout)

    # -- kernel side ------------------------------------------------------------------------------------
    def step(self) -> None:
        """Called by the loop before each step: returns once the test has allowed this step."""
        self.steps += 1
        n = self.steps
        if _read(self.allowed_path) >= n:
            return
        _write(self.held_path, n)
        deadline = time.monotonic() + self.timeout
        while _read(self.allowed_path) < n:
            if time.monotonic() > deadline:
                raise GateTimeout(f"gate {self.name}: step {n} was not allowed within {self.timeout} s")
            time.sleep(POLL_S)
