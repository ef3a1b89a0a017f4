"""Regenerate the README's reference tables from the code, so they cannot drift from it:
the magics and their options (from each magic's argument parser) and the findings catalogue.

Run: .venv/bin/python docs/readme_tables.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
README = ROOT / "README.md"


def magics_table() -> str:
    from IPython.core.interactiveshell import InteractiveShell

    import nbdebug

    shell = InteractiveShell.instance()
    nbdebug.load_ipython_extension(shell)
    rows = ["| magic | what it does | options |", "| --- | --- | --- |"]
    for kind, prefix in (("line", "%"), ("cell", "%%")):
        for name, fn in sorted(shell.magics_manager.magics[kind].items()):
            if not name.startswith("nn_"):
                continue
            parser = getattr(getattr(fn, "__func__", fn), "parser", None)
            # the docstring's first line (magic_arguments prepends the usage to __doc__; the parser keeps
            # the original as its description)
            doc = (parser.description if parser is not None else fn.__doc__) or ""
            summary = doc.strip().splitlines()[0].strip() if doc.strip() else ""
            opts = []
            if parser is not None:
                for action in parser._actions:
                    if action.option_strings and "-h" not in action.option_strings:
                        opts.append(f"`{'/'.join(action.option_strings)}`: {action.help or ''}".strip())
                    elif not action.option_strings:
                        opts.append(f"`{action.dest}`: {action.help or ''}")
            rows.append(f"| `{prefix}{name}` | {summary} | {'<br>'.join(opts)} |")
    return "\n".join(rows)


def findings_table() -> str:
    from nbdebug._core.findings import CATALOGUE

    rows = ["| code | when | threshold | source | nature |", "| --- | --- | --- | --- | --- |"]
    for code, info in CATALOGUE.items():
        rows.append(f"| `{code}` | {info.title} | {info.threshold} | {info.source} | {info.nature} |")
    return "\n".join(rows)


def replace(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text:
        raise SystemExit(f"README.md has no {start} marker")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}\n{end}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if README.md's tables are out of date")
    args = ap.parse_args()
    text = README.read_text()
    new = replace(replace(text, "magics", magics_table()), "findings", findings_table())
    if args.check:
        if new != text:
            print("README.md tables are out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    print("updated README.md tables")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
