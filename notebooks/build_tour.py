"""Assemble notebooks/00_tour.ipynb from the per-feature sections in notebooks/tour/, and every
notebooks/src/NN_name.py into notebooks/NN_name.ipynb.

Sources are plain Python in the "percent" format (cells separated by `# %%` lines, markdown cells by
`# %% [markdown]` with every line commented), so they diff and review like code, and each feature owns
its own tour section. `--check` fails when a committed notebook is out of date with its source (CI
runs it).
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


def build(sources: list[Path], prefix: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for src in sources:
        nb.cells.extend(parse(src.read_text()))
    for i, cell in enumerate(nb.cells):  # stable ids so the built file is reproducible
        cell["id"] = f"{prefix}-{i:03d}"
    return nb


def targets() -> dict[Path, nbformat.NotebookNode]:
    out = {TOUR: build(sorted((HERE / "tour").glob("*.py")), "tour")}
    for src in sorted((HERE / "src").glob("*.py")):
        out[HERE / f"{src.stem}.ipynb"] = build([src], src.stem.split("_")[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="fail if 00_tour.ipynb is out of date")
    args = ap.parse_args()
    stale = 0
    for path, nb in targets().items():
        text = nbformat.writes(nb) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                print(f"{path.relative_to(HERE.parent)} is out of date: run `make tour`", file=sys.stderr)
                stale += 1
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
