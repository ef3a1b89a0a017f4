"""The bug corpus's harness: how a case is declared, and the two ways it runs.

A case is a small training program reproduced from a public source (a Stack Overflow question, a
PyTorch forum thread, a GitHub issue, pytorch/examples, an official tutorial), scaled down to run on a
CPU in seconds. It is a function `program(bug, nb) -> metrics`:

- `bug` switches the reported bug on (True) or runs the fixed program (False); healthy programs have no
  bug and are always called with `bug=False`.
- `nb` is where the program meets nbdebug, at the place a user would put it: `with nb.watch(model, opt):`
  around the training loop, `nb.check(model, batch, loss_fn)` before it, `nb.overfit(...)`,
  `with nb.watch_gan(D, G, opt_d, opt_g):`. In `--verify` mode these are no-ops, so the program runs
  exactly as its author wrote it, without nbdebug.
- It returns a few numbers (accuracy, final loss, gradient norm, ...) that `verify` reads to show that the
  bug really manifests and that the fix works, without nbdebug.

Register a case with the `case` decorator in a module under `bench/bugs/cases/`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Metrics = dict[str, float]


@dataclass
class Case:
    name: str
    source: str  # URL of the public report / tutorial / example the program reproduces
    title: str  # one line: what the original program does, and its bug
    program: Callable[[bool, Any], Metrics]
    verify: Callable[..., bool]  # bug: verify(bug_metrics, fixed_metrics); healthy: verify(metrics)
    expect: tuple[str, ...] = ()  # catalogue codes, any of which names the bug (empty: healthy)
    healthy: bool = False
    quick: bool = False  # part of the quick subset CI runs
    first_effect: int = 1  # optimizer step (G step for a GAN) at which the bug first shows
    category: str = ""  # e.g. "wiring", "loss", "data", "optimization", "gan", "tutorial"
    module: str = ""


REGISTRY: dict[str, Case] = {}


def case(
    *,
    name: str,
    source: str,
    title: str,
    verify: Callable[..., bool],
    expect: tuple[str, ...] | str = (),
    healthy: bool = False,
    quick: bool = False,
    first_effect: int = 1,
    category: str = "",
) -> Callable[[Callable[[bool, Any], Metrics]], Callable[[bool, Any], Metrics]]:
    """Register `program` as a corpus case (see the module docstring)."""
    if isinstance(expect, str):
        expect = (expect,)
    if healthy == bool(expect):
        raise ValueError(f"case {name}: a bug case names the codes it expects; a healthy case names none")

    def register(program: Callable[[bool, Any], Metrics]) -> Callable[[bool, Any], Metrics]:
        if name in REGISTRY:
            raise ValueError(f"two cases are named {name!r}")
        REGISTRY[name] = Case(
            name=name, source=source, title=title, program=program, verify=verify, expect=tuple(expect),
            healthy=healthy, quick=quick, first_effect=first_effect, category=category,
            module=program.__module__,
        )  # fmt: skip
        return program

    return register


def load_all() -> dict[str, Case]:
    """Import every module under bench/bugs/cases/ and its sub-packages (each registers its cases)."""
    import importlib
    import pkgutil

    from . import cases

    for info in sorted(pkgutil.walk_packages(cases.__path__, f"{cases.__name__}."), key=lambda i: i.name):
        importlib.import_module(info.name)
    return REGISTRY


def seed_all(seed: int = 0) -> None:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


# -- the two ways a program meets nbdebug ---------------------------------------------------------------
class _NullRun:
    """What `nb.watch(...)` returns in verify mode: a context manager that does nothing."""

    def __enter__(self) -> _NullRun:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def epoch(self) -> None:
        return None


class Plain:
    """Verify mode: every nbdebug entry point is a no-op; the program runs as its author wrote it."""

    diagnosing = False

    def watch(self, *args: Any, **kwargs: Any) -> _NullRun:
        return _NullRun()

    def watch_gan(self, *args: Any, **kwargs: Any) -> _NullRun:
        return _NullRun()

    def check(self, *args: Any, **kwargs: Any) -> None:
        return None

    def overfit(self, *args: Any, **kwargs: Any) -> None:
        return None

    def predictions(self, *args: Any, **kwargs: Any) -> None:
        return None

    def gradcheck(self, *args: Any, **kwargs: Any) -> None:
        return None

    def memory(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Seen:
    """One finding as the corpus records it: code, severity, and the step it was first raised at
    (0 for one-shot checks: check, overfit, predictions, gradcheck, memory)."""

    code: str
    severity: str
    step: int
    tool: str
    message: str = ""


@dataclass
class Diagnosed:
    findings: list[Seen] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    steps: int = 0


class Nbdebug:
    """Diagnose mode: the real nbdebug entry points; every finding they return is recorded."""

    diagnosing = True

    def __init__(self) -> None:
        self.result = Diagnosed()
        self._watches: list[tuple[str, Any]] = []

    def _keep(self, tool: str, findings: Any, found_at: Callable[[str], int | None] | None = None) -> None:
        for f in findings:
            step = found_at(f.code) if found_at is not None else 0
            self.result.findings.append(Seen(f.code, f.severity, step or 0, tool, f.message))

    @contextlib.contextmanager
    def _run(self, tool: str, w: Any) -> Iterator[Any]:
        try:
            with w:
                yield w
        finally:
            self._keep(tool, w.findings, w.found_at)
            self.result.internal_errors.extend(getattr(w, "internal_errors", []))
            self.result.steps += int(getattr(w, "steps", 0) or 0)

    def watch(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        return self._run("watch", nbdebug.watch(*args, **kwargs))

    def watch_gan(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        return self._run("watch_gan", nbdebug.watch_gan(*args, **kwargs))

    def check(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        report = nbdebug.check(*args, **kwargs)
        self._keep("check", report.findings)
        return report

    def overfit(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        kwargs.setdefault("time_budget", 10.0)
        result = nbdebug.overfit(*args, **kwargs)
        self._keep("overfit", result.findings)
        return result

    def predictions(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        report = nbdebug.predictions(*args, **kwargs)
        self._keep("predictions", report.findings)
        return report

    def gradcheck(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        result = nbdebug.gradcheck(*args, **kwargs)
        self._keep("gradcheck", result.findings)
        return result

    def memory(self, *args: Any, **kwargs: Any) -> Any:
        import nbdebug

        report = nbdebug.memory(*args, **kwargs)
        self._keep("memory", report.findings)
        return report


# -- running one case -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: Case
    bug: bool  # the bug switch it ran with
    findings: list[Seen] = field(default_factory=list)
    internal_errors: list[str] = field(default_factory=list)
    metrics: Metrics = field(default_factory=dict)
    error: str | None = None  # the program itself raised (a broken case, or nbdebug broke it)
    seconds: float = 0.0

    @property
    def alarms(self) -> list[Seen]:
        return [f for f in self.findings if f.severity in ("warning", "error")]

    @property
    def diagnosed(self) -> bool:
        return any(f.code in self.case.expect for f in self.findings)

    @property
    def latency(self) -> int | None:
        """Steps from the bug's first effect to the first finding naming it (0: at once or before)."""
        steps = [f.step for f in self.findings if f.code in self.case.expect]
        if not steps:
            return None
        return max(min(steps) - self.case.first_effect, 0)


def run_case(c: Case, bug: bool, diagnose: bool = True, seed: int = 0) -> Outcome:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is fastest on a shared 2-core machine
    seed_all(seed)
    nb = Nbdebug() if diagnose else Plain()
    out = Outcome(c, bug)
    t0 = time.perf_counter()
    try:
        out.metrics = dict(c.program(bug, nb))
    except Exception as e:
        out.error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    finally:
        torch.set_num_threads(threads)
    out.seconds = time.perf_counter() - t0
    if isinstance(nb, Nbdebug):
        out.findings = nb.result.findings
        out.internal_errors = nb.result.internal_errors
    return out


def verify_case(c: Case, seed: int = 0) -> tuple[bool, str]:
    """Run the program without nbdebug; for a bug, with and without the bug. Returns (ok, metrics text)."""
    if c.healthy:
        o = run_case(c, False, diagnose=False, seed=seed)
        if o.error:
            return False, f"raised {o.error.splitlines()[0]}"
        return bool(c.verify(o.metrics)), _fmt(o.metrics)
    b = run_case(c, True, diagnose=False, seed=seed)
    f = run_case(c, False, diagnose=False, seed=seed)
    if b.error or f.error:
        return (
            False,
            f"raised: bug {b.error and b.error.splitlines()[0]} / fixed {f.error and f.error.splitlines()[0]}",
        )
    return bool(c.verify(b.metrics, f.metrics)), f"bug {_fmt(b.metrics)} | fixed {_fmt(f.metrics)}"


def _fmt(m: Metrics) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}" for k, v in m.items()
    )
