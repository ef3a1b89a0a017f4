"""What every `%nn_*` magic shares: one argument parser, name lookup in the user's namespace, the
standard options, errors as one red line, and running a cell under a live monitor.

One parser for all magics: arguments are split on spaces outside brackets and quotes, so expressions
with parentheses, brackets and commas work unquoted (`%nn_check model (x[:64], y[:64]) nn.CrossEntropyLoss()`),
and one level of quotes around an expression is dropped (`"(x, y)"` is the tuple, as before). The standard
options mean the same in every magic: `-o/--output` returns the result object, `--static` shows the static
view instead of a panel (`--table` and `--no-panel` are kept as aliases, and `--return` for `-o`).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument

from .errors import NbdebugError


def split_expressions(line: str) -> list[str]:
    """Split a magic line on spaces outside brackets and quotes: `(x[:64], y[:64])` stays one argument."""
    parts, buf, depth, quote = [], [], 0, ""
    for ch in line:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch in "([{":
            depth += 1
            buf.append(ch)
        elif ch in ")]}":
            depth -= 1
            buf.append(ch)
        elif ch.isspace() and depth <= 0:
            if buf:
                parts.append("".join(buf))
                buf = []
        else:
            buf.append(ch)
    if quote or depth > 0:
        raise UsageError(f"unbalanced brackets or quotes in {line!r}")
    if depth < 0:
        raise UsageError(f"a closing bracket without its opening one in {line!r}")
    if buf:
        parts.append("".join(buf))
    return parts


def unquote(expr: str) -> str:
    """Drop one level of matching quotes: `"(x, y)"` and `'lambda o, t: o'` are expressions."""
    expr = expr.strip()
    if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "'\"":
        return expr[1:-1]
    return expr


def parse(magic: Any, line: str) -> argparse.Namespace:
    """Parse `line` with the `@magic_arguments` parser of `magic` (the magic's method)."""
    parser = getattr(getattr(magic, "__func__", magic), "parser", None)
    if parser is None:
        raise TypeError(f"{magic!r} has no @magic_arguments parser")
    try:
        return parser.parse_args(split_expressions(line))
    except UsageError:
        raise
    except SystemExit:  # argparse exits on a bad option; IPython shows a UsageError as one red line
        name = getattr(magic, "__name__", "the magic")
        raise UsageError(f"could not parse {line!r}; see %{name}? for the options") from None


def evaluate(shell: Any, expr: str, what: str = "value") -> Any:
    """Evaluate `expr` (a name or a small expression, quotes optional) in the user's namespace.

    A missing name or a failing expression becomes a UsageError naming `expr`, never a traceback.
    """
    quoted = expr.strip()
    expr = unquote(quoted)
    if not expr:
        raise UsageError(f"missing {what}")
    try:
        return eval(expr, shell.user_ns)
    except NameError:
        if expr != quoted and expr.isidentifier():  # --scores 'logits': a quoted word is that string
            return expr
        raise UsageError(f"{what} {expr!r} is not defined in the notebook namespace") from None
    except Exception as e:
        raise UsageError(f"could not evaluate {what} {expr!r}: {type(e).__name__}: {e}") from None


def output_option(what: str) -> Callable:
    """`-o/--output`: return the result object (`--return`: the old spelling of two magics)."""
    return argument(
        "-o", "--output", "--return", dest="output", action="store_true",
        help=f"return the {what} (--return: alias)",
    )  # fmt: skip


def static_option(what: str = "the static view instead of the panel") -> Callable:
    """`--static`: no panel, the result's static rendering (`--table`, `--no-panel`: old spellings)."""
    return argument(
        "--static", "--table", "--no-panel", dest="static", action="store_true",
        help=f"show {what} (--table, --no-panel: aliases)",
    )  # fmt: skip


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


def show(result: Any, args: argparse.Namespace, panel: Callable[[], Any] | None = None) -> Any:
    """How a line magic ends: `-o` returns the result (IPython shows it as `Out[n]` unless assigned),
    `--static` (or a magic without a panel) displays the result's static view, else `panel()` is shown."""
    if getattr(args, "output", False):
        return result
    display(result if panel is None or getattr(args, "static", False) else panel())
    return None


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
