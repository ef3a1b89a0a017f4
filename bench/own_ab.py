"""nbdebug's own time under `watch` inside Lightning and the Hugging Face Trainer: an earlier commit's package
against the working tree's, on the same runs.

A wall-time ratio moves by up to 0.1 between runs of the same code on a shared host, so a change of a few
percent of the step cannot be read from `bench_integrations.py` alone. This script times nbdebug's own calls
(`bench/_common.py` `OwnTime`) around `run("watch")` of `bench_integrations.py`'s runs, with the package of
`REV` (exported by `git archive` into a temporary folder) and with the working tree's, in separate processes
taken in turn (old, new, old, new, ...): each pair compares runs made a minute apart, and the benchmark code is
the tree's for both. Figures: per process, the median of `--runs` runs (ms of nbdebug's own time per step); per
pair, new / old; then the median of the pairs.

Usage: python bench/own_ab.py REV [--framework lightning|hf|both] [--pairs 3] [--runs 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(package_root: str, framework: str, steps: int, runs: int) -> None:
    """Print the median own time (ms/step) of `runs` watched runs with the nbdebug found in `package_root`."""
    sys.path[:0] = [package_root, str(ROOT)]
    import torch

    import nbdebug
    from bench._common import OwnTime
    from bench.bench_integrations import lightning_runs, trainer_runs

    assert Path(nbdebug.__file__).is_relative_to(package_root), nbdebug.__file__
    torch.set_num_threads(1)
    run, _ = (trainer_runs if framework == "hf" else lightning_runs)(steps)
    run("watch")  # warm-up
    own = []
    for _ in range(runs):
        with OwnTime() as timer:
            run("watch")
        own.append(timer.seconds / steps * 1e3)
    print(f"{statistics.median(own):.4f}")


def export(rev: str, into: str) -> str:
    """The `nbdebug` package of commit `rev`, in a folder of its own (its `bench` is not used)."""
    data = subprocess.run(
        ["git", "archive", rev, "nbdebug"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(package_root: str, framework: str, steps: int, runs: int) -> float:
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "4294967296",  # the allocator held fixed, as in bench_integrations.py
        "MALLOC_TRIM_THRESHOLD_": "4294967296",
        "PYTHONWARNINGS": "ignore",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", package_root, "--framework", framework,
         "--steps", str(steps), "--runs", str(runs)],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", help="the commit to compare the working tree against")
    ap.add_argument("--framework", choices=["lightning", "hf", "both"], default="both")
    ap.add_argument("--pairs", type=int, default=3, help="old/new process pairs (default 3)")
    ap.add_argument("--runs", type=int, default=3, help="watched runs per process (default 3)")
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (default 60)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.framework, args.steps, args.runs)
        return
    if not args.rev:
        ap.error("give the commit to compare against (e.g. HEAD~3)")
    frameworks = ["lightning", "hf"] if args.framework == "both" else [args.framework]
    with tempfile.TemporaryDirectory() as tmp:
        old = export(args.rev, tmp)
        for fw in frameworks:
            ratios = []
            for _ in range(args.pairs):
                a = measure(old, fw, args.steps, args.runs)
                b = measure(str(ROOT), fw, args.steps, args.runs)
                ratios.append(b / a)
                print(
                    f"{fw:<10} own ms/step: {args.rev} {a:.3f}, tree {b:.3f}, tree / {args.rev} {b / a:.3f}"
                )
            print(f"{fw:<10} median of {args.pairs} pairs: {statistics.median(ratios):.3f}\n")


if __name__ == "__main__":
    main()
