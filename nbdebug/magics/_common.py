"""Helpers every magic shares: look names up in the user namespace, turn errors into UsageError."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from typing import Any

from IPython.core.error import UsageError

from ..errors import NbdebugError


def evaluate(shell: Any, expr: str, what: str = "value") -> Any:
    """Evaluate `expr` (a name or a small expression) in the user's namespace.

    A missing name or a failing expression becomes a UsageError naming `expr`, never a traceback.
    """
    expr = expr.strip()
    if not expr:
        raise UsageError(f"missing {what}")
    try:
        return eval(expr, shell.user_ns)
    except NameError:
        raise UsageError(f"{what} {expr!r} is not defined in the notebook namespace") from None
    except Exception as e:
        raise UsageError(f"could not evaluate {what} {expr!r}: {type(e).__name__}: {e}") from None


def split_args(line: str) -> list[str]:
    """Split a magic line like a shell does; an unbalanced quote is a UsageError."""
    try:
        return shlex.split(line)
    except ValueError as e:
        raise UsageError(f"could not parse arguments {line!r}: {e}") from None


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Re-raise NbdebugError as UsageError so IPython shows one red line, not a traceback."""
    try:
        yield
    except NbdebugError as e:
        raise UsageError(str(e)) from None


def display(obj: Any) -> None:
    """Display a panel or result in the current cell's output."""
    from IPython.display import display as _display

    _display(obj)


def run_watched_cell(
    shell: Any, cell: str, monitor: Any, make_panel: Any, label: str, *, panel: bool, output: bool
):
    """Run a cell's code inside `monitor` (a context manager) under a live panel made by `make_panel`.

    The panel is finished and its saved output updated with the final static rendering even when the
    cell raises, so notebooks rendered without a kernel show how the run ended.
    """
    from IPython.display import display as ip_display

    view = handle = None
    if panel:
        view = make_panel(monitor)
        handle = ip_display(view, display_id=True)
    code = shell.transform_cell(cell)
    try:
        with monitor:
            exec(compile(code, f"<{label} cell>", "exec"), shell.user_ns)
    finally:
        if view is not None:
            view.finish()
            if handle is not None:
                handle.update(view)
        elif not output:
            ip_display(monitor)
    return monitor if output else None
