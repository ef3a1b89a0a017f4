"""What the live monitors (`Watch`, `GanWatch`) share: the run's lifecycle (hooks and the backward/loss
interception attached on entry, removed on exit whatever happened), the findings' lifecycle, and
throttled calls to the live view and to the diagnosis, so that neither takes more than a few percent of
the training time.

Findings' lifecycle: each diagnosis says what is true now. A new finding is raised (and shown at once);
a finding whose code is a *state* in the catalogue (the loss is flat, the learning rate too high) and
that the diagnosis no longer finds is withdrawn, with the step and what contradicted it; an *event* (a
NaN, a leaked gradient, a transient blow-up) stays. `findings` is what holds at the end, `withdrawn`
what was withdrawn, `finding_history` every raise and withdrawal in order. An exception inside a check,
a hook or the view is surfaced once as an `internal-error` finding (info) and counted in
`internal_errors`; it never stops the user's training."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from typing import Any

from .._core import intercept as _intercept
from .._core.catalogue import nature
from .._core.errors import NbdebugError
from .._core.findings import SEVERITIES, Finding, FindingEvent, withdrawn_text
from .._core.hooks import HookSet
from .._core.result import Result
from .._core.throttle import Throttle


class LiveResults(Result):
    """Base of a live monitor. The subclass calls `_init_live(on_update, update_interval)` in its
    `__init__`, implements `summary()` / `_html()`, and runs its checks through `_run_checks`."""

    on_update: Callable[[Any], None] | None
    internal_errors: list[str]

    def _init_live(self, on_update: Callable[[Any], None] | None, update_interval: float) -> None:
        self.on_update = on_update
        self.internal_errors = []
        self.running = False
        self.started = self.finished = math.nan
        self.exc_type: type | None = None
        self._hooks: HookSet | None = None
        self._listening: Any = None
        self._findings: dict[tuple[str, Any], Finding] = {}
        self._found_at: dict[tuple[str, Any], int] = {}
        self._withdrawn: dict[tuple[str, Any], FindingEvent] = {}
        self.finding_history: list[FindingEvent] = []
        # the live view: at most every `update_interval` s and never for more than ~10% of the wall time
        self._view = Throttle(update_interval, share_inverse=10)
        # routine diagnosis (it reads the whole history): never for more than ~5% of the wall time
        self._diag = Throttle(0.0, share_inverse=20)

    @property
    def update_interval(self) -> float:
        return self._view.interval

    @update_interval.setter
    def update_interval(self, value: float) -> None:
        self._view.interval = value

    @property
    def updates(self) -> int:
        """How many times the live view was called."""
        return self._view.count

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
        """Call the live view, throttled (see `_view`); `force` for a new finding or the final state."""
        if self.on_update is None or not (force or self._view.due()):
            return
        start = time.perf_counter()
        try:
            self.on_update(self)
        except Exception as e:  # a broken view must never break the user's training loop
            self.internal_errors.append(f"on_update: {type(e).__name__}: {e}")
        self._view.done(start)

    def _diagnosis_due(self) -> bool:
        """Whether a routine (not final, not urgent) diagnosis may run now."""
        return self._diag.due()

    def _run_checks(
        self,
        checks: Callable[[], list[Finding]],
        step: Callable[[], int],
        why: Callable[[Finding], str] | None = None,
    ) -> None:
        """Run the checks, timed, never letting a diagnosis bug stop the user's training; record what they
        found at `step()`. `checks` may mark the run as partial (`self._partial = True`: a check raised),
        and then nothing is withdrawn on this diagnosis; `why(finding)` says what contradicts a withdrawn one."""
        start = time.perf_counter()
        self._partial = False
        try:
            found: list[Finding] | None = checks()
        except Exception as e:
            self.internal_errors.append(f"diagnose: {type(e).__name__}: {e}")
            found = None
        finally:
            self._diag.done(start)
        self._record(found, step(), self.running, why)

    def _all_internal_errors(self) -> list[str]:
        """Every internal error of this run (a subclass with more lists adds them)."""
        return self.internal_errors

    def _record(
        self,
        found: list[Finding] | None,
        step: int,
        running: bool,
        why: Callable[[Finding], str] | None = None,
    ) -> None:
        """Apply one diagnosis (None: it failed, nothing changes but the internal-error finding): raise what
        is new, keep the latest evidence of each (code, where), withdraw the states no longer found (see the
        module docstring), and show a new finding at once rather than at the next throttled redraw."""
        current: dict[tuple[str, Any], Finding] = {}
        for f in found or []:
            current[(f.code, f.where)] = f
        errors = self._all_internal_errors()
        if errors:
            current[("internal-error", None)] = internal_error_finding(errors)
        new = False
        for key, f in current.items():
            if key not in self._findings:
                self.finding_history.append(FindingEvent(step, "raised", f))
                self._withdrawn.pop(key, None)
                self._found_at.setdefault(key, step)
                new = True
            self._findings[key] = f
        if found is not None and not getattr(self, "_partial", False):
            for key in [k for k in self._findings if k not in current and nature(k[0]) == "state"]:
                f = self._findings.pop(key)
                try:
                    reason = why(f) if why is not None else ""
                except Exception as e:
                    self.internal_errors.append(f"withdraw: {type(e).__name__}: {e}")
                    reason = ""
                event = FindingEvent(step, "withdrawn", f, reason or f"no longer found at step {step}")
                self.finding_history.append(event)
                self._withdrawn[key] = event
        if new and running:
            self._notify(force=True)

    @property
    def withdrawn(self) -> list[FindingEvent]:
        """Findings raised earlier and withdrawn since (not raised again), each with its step and reason."""
        return list(self._withdrawn.values())

    def to_text(self) -> str:
        """The summary, the findings that hold, then the withdrawn ones with what contradicted them."""
        text = super().to_text()
        gone = withdrawn_text(self.withdrawn)
        return f"{text}\n{gone}" if gone else text

    @property
    def findings(self) -> list[Finding]:
        """Findings so far, most severe first (live while the loop runs)."""
        order = {s: i for i, s in enumerate(SEVERITIES)}
        return sorted(self._findings.values(), key=lambda f: order[f.severity])

    def found_at(self, code: str) -> int | None:
        """The step count (G steps for a GAN) at which `code` was first raised (None if never)."""
        steps = [s for (c, _), s in self._found_at.items() if c == code]
        return min(steps) if steps else None

    def __repr__(self) -> str:  # a live monitor inspected in a REPL shows its findings
        return self.to_text()

    def _html_key(self) -> Hashable:
        return (self.running, self.steps, self.exc_type, tuple(self._findings), len(self.finding_history))


REPORT = (
    "please report it to the nbdebug issue tracker with this message and your nbdebug and torch versions "
    "(nbdebug.__version__, torch.__version__)"
)


def internal_error_finding(errors: list[str]) -> Finding:
    """One `internal-error` finding (info) for all of a run's internal errors: the count, the first one
    with the check or hook that raised it, and where to report it."""
    first = errors[0]
    where = first.split(":", 1)[0]
    more = f" ({len(errors)} in all; the first)" if len(errors) > 1 else ""
    return Finding(
        "internal-error",
        "info",
        f"nbdebug raised inside {where}{more}: {first.split(':', 1)[1].strip() if ':' in first else first}; "
        "the other checks ran and your training was not affected, but what nbdebug says may be incomplete",
        REPORT,
        None,
        {"count": len(errors), "first": first, "errors": list(errors[:10])},
    )
