"""What the live monitors (`Watch`, `GanWatch`) share: the run's lifecycle (hooks and the backward/loss
interception attached on entry, removed on exit whatever happened), findings kept as they are found,
and a throttled call to the live view, so that drawing never takes more than ~10% of training time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .._core import intercept as _intercept
from .._core.errors import NbdebugError
from .._core.findings import SEVERITIES, Finding
from .._core.hooks import HookSet


class LiveResults:
    """Mixin; the subclass sets `on_update`, `update_interval`, `_last_update`, `_update_cost`, `updates`,
    `internal_errors`, `_findings` ({(code, where): Finding}) and `_found_at` ({(code, where): step})."""

    on_update: Callable[[Any], None] | None
    update_interval: float
    _last_update: float
    _update_cost: float
    updates: int
    internal_errors: list[str]
    _findings: dict[tuple[str, Any], Finding]
    _found_at: dict[tuple[str, Any], int]
    _last_diag: float  # when the checks last ran, and how long they took
    _diag_cost: float
    _hooks: HookSet | None
    _listening: Any
    running: bool
    started: float
    finished: float
    exc_type: type | None

    def _start(self, attach: Callable[[HookSet], None], factory: str) -> None:
        """Attach this run's hooks (via `attach`) and start intercepting backward and loss calls; if any
        of that fails, nothing stays attached. `factory` names the call that makes a new monitor."""
        if self.running:
            raise NbdebugError(
                f"this {type(self).__name__} is already running; create a new {factory} for another run"
            )
        hooks = HookSet()
        try:
            attach(hooks)
            listening = _intercept.listening(self)
            listening.__enter__()
        except BaseException:
            hooks.remove()
            raise
        self._hooks, self._listening = hooks, listening
        self.running = True
        self.started = time.perf_counter()

    def _stop(self, exc_type: type | None, release: Callable[[], None]) -> None:
        """Undo `_start` on normal exit, exception or KeyboardInterrupt; `release` frees per-run state."""
        try:
            if self._listening is not None:
                self._listening.__exit__(None, None, None)
        finally:
            self._listening = None
            if self._hooks is not None:
                self._hooks.remove()
                self._hooks = None
            release()
            self.running = False
            self.finished = time.perf_counter()
            self.exc_type = exc_type

    def _notify(self, force: bool = False) -> None:
        """Call the live view at most every `update_interval` s, and never for more than ~10% of the
        wall time: the next update waits at least 10x as long as the last one took."""
        if self.on_update is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_update < max(self.update_interval, 10 * self._update_cost):
            return
        try:
            self.on_update(self)
        except Exception as e:  # a broken view must never break the user's training loop
            self.internal_errors.append(f"on_update: {type(e).__name__}: {e}")
        self._last_update = time.perf_counter()
        self._update_cost = self._last_update - now
        self.updates += 1

    def _run_checks(self, checks: Callable[[], list[Finding]], step: Callable[[], int]) -> None:
        """Run the checks, timed (callers skip routine runs while they would cost over ~5% of the wall time),
        never letting a diagnosis bug stop the user's training; record what they found at `step()`."""
        t0 = time.perf_counter()
        try:
            found = checks()
        except Exception as e:
            self.internal_errors.append(f"diagnose: {type(e).__name__}: {e}")
            return
        finally:
            self._last_diag = time.perf_counter()
            self._diag_cost = self._last_diag - t0
        self._record(found, step(), self.running)

    def _record(self, found: list[Finding], step: int, running: bool) -> None:
        """Keep the latest evidence of each (code, where); remember the step it was first seen at, and
        show a new finding at once rather than at the next throttled redraw."""
        new = False
        for f in found:
            key = (f.code, f.where)
            self._findings[key] = f
            if key not in self._found_at:
                self._found_at[key] = step
                new = True
        if new and running:
            self._notify(force=True)

    @property
    def findings(self) -> list[Finding]:
        """Findings so far, most severe first (live while the loop runs)."""
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self._findings.values(), key=lambda f: order[f.severity])

    def found_at(self, code: str) -> int | None:
        """The step count (G steps for a GAN) at which `code` was first raised (None if never)."""
        steps = [s for (c, _), s in self._found_at.items() if c == code]
        return min(steps) if steps else None
