"""Assemble notebooks/00_tour.ipynb from the per-feature sections in notebooks/tour/.

Each feature owns one section file (`NN_name.py`, cells separated by `# %%` lines, markdown cells by
`# %% [markdown]` with every line commented), so features land without editing the same notebook.
`--check` fails when the committed tour is out of date with its sections (CI runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
TOUR = HERE / "00_tour.ipynb"


def parse(text: str) -> list:
    cells, kind, lines = [], None, []

    def flush() -> None:
        if kind is None:
            return
        src = "\n".join(lines).strip("\n")
        if kind == "markdown":
            src = "\n".join(
                line[2:] if line.startswith("# ") else line.lstrip("#") for line in src.splitlines()
            )
            cells.append(nbformat.v4.new_markdown_cell(src))
        elif src.strip():
            cells.append(nbformat.v4.new_code_cell(src))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        else:
            lines.append(line)
    flush()
    return cells


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for section in sorted((HERE / "tour").glob("*.py")):
        nb.cells.extend(parse(section.read_text()))
    for i, cell in enumerate(nb.cells):  # stable ids so the built file is reproducible
        cell["id"] = f"tour-{i:03d}"
    return nb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if 00_tour.ipynb is out of date")
    args = ap.parse_args()
    text = nbformat.writes(build()) + "\n"
    if args.check:
        if not TOUR.exists() or TOUR.read_text() != text:
            print("notebooks/00_tour.ipynb is out of date: run `make tour`", file=sys.stderr)
            return 1
        return 0
    TOUR.write_text(text)
    print(f"wrote {TOUR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
