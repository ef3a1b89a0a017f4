"""Overhead of `nbdebug.watch` on a training step, measured side by side in one process.

Variants, each timed over the same steps of the same small CNN (batch 64, CPU, one thread):
  bare            the user's loop alone
  watch default   nbdebug.watch(model, opt) with its defaults (layer statistics every 10 steps)
  watch full      every=1: per-layer statistics and histograms of activations and gradients every step
  tensorboard     torch.utils.tensorboard's SummaryWriter.add_histogram of every parameter and gradient
                  each step (the usual alternative), writing its event file to a temporary directory
Rounds interleave the variants, in the opposite order every other round; the table gives the median time
per step and the median of the per-round ratios to bare. The allocator is held fixed (bench/_common.py
`fixed_allocator`; `--system-malloc` leaves glibc's defaults).
A sync count: the reads of tensor values to the host (each one a wait for the device on a GPU) that
nbdebug's own code makes per step, on the steps it samples and on those it does not (issue 17: at most one
per ten unsampled steps; before it, two per step: the loss and the gradient norm).
A last part runs 10,000 steps (2,000 with --quick) under watch and reports live tensors and Python
heap at the start and end: the monitor keeps summaries, so both stay flat.

Usage: python bench/bench_watch.py [--quick] [--system-malloc]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nbdebug
from bench._common import draw_histograms, fixed_allocator


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def tb_histograms(writer, model: nn.Module, step: int) -> None:
    """What a user adds to the loop for TensorBoard histograms of every parameter and gradient."""
    for name, p in model.named_parameters():
        writer.add_histogram(f"{name}/weight", p, step)
        writer.add_histogram(f"{name}/grad", p.grad, step)


def time_steps(model, opt, batches, variant: str, writer=None) -> float:
    counter = iter(range(10**9))

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if variant == "tensorboard":
            tb_histograms(writer, model, next(counter))

    ctx = {
        "watch default": lambda: nbdebug.watch(model, opt),
        "watch full": lambda: nbdebug.watch(model, opt, every=1),
    }.get(variant)
    if ctx is None:
        t0 = time.perf_counter()
        for x, y in batches:
            step(x, y)
        return (time.perf_counter() - t0) / len(batches)
    with ctx() as w:
        t0 = time.perf_counter()
        for x, y in batches:
            step(x, y)
        draw_histograms(w)
        t = time.perf_counter() - t0
    return t / len(batches)


def overhead(rounds: int, steps: int) -> list[tuple[str, float, float]]:
    torch.manual_seed(0)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [(torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))) for _ in range(steps)]
    from torch.utils.tensorboard import SummaryWriter  # pip install tensorboard (the bench extra)

    variants = ["bare", "watch default", "watch full", "tensorboard"]
    with tempfile.TemporaryDirectory() as logdir:
        writer = SummaryWriter(logdir)
        for v in variants:  # warm-up
            time_steps(model, opt, batches[:5], v, writer)
        times: dict[str, list[float]] = {v: [] for v in variants}
        ratios: dict[str, list[float]] = {v: [] for v in variants}
        for r in range(rounds):  # A B C D, D C B A, ...: a drift during a round hits every variant alike
            got = {v: time_steps(model, opt, batches, v, writer) for v in (variants[:: 1 - 2 * (r % 2)])}
            for v in variants:
                times[v].append(got[v])
                ratios[v].append(got[v] / got["bare"])
        writer.close()
    return [(v, statistics.median(times[v]), statistics.median(ratios[v])) for v in variants]


def sync_count(steps: int = 200, every: int = 10) -> tuple[int, int, int, int]:
    """(sampled steps, reads on them, unsampled steps, reads on them) of nbdebug's own code."""
    from bench._common import ReadCounter

    torch.manual_seed(0)
    model = small_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))) for _ in range(steps)]
    sampled = unsampled = on_sampled = on_unsampled = 0
    with ReadCounter() as counter, nbdebug.watch(model, opt, every=every) as w:
        for x, y in batches:
            before = len(counter.reads)
            counter.on = True
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            counter.on = False
            n = len(counter.reads) - before
            if w.steps in w.monitor.samples:
                sampled, on_sampled = sampled + 1, on_sampled + n
            else:
                unsampled, on_unsampled = unsampled + 1, on_unsampled + n
    return sampled, on_sampled, unsampled, on_unsampled


def memory(steps: int) -> list[tuple[int, int, float]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 32), torch.randint(0, 10, (64,))
    marks = {steps // 10, steps}
    rows = []
    tracemalloc.start()
    with nbdebug.watch(model, opt):
        for i in range(1, steps + 1):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i in marks:
                gc.collect()
                with warnings.catch_warnings():  # isinstance() on torch's deprecated module aliases
                    warnings.simplefilter("ignore")
                    tensors = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
                rows.append((i, tensors, tracemalloc.get_traced_memory()[0] / 1e6))
    tracemalloc.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps (a few seconds)")
    ap.add_argument(
        "--system-malloc", action="store_true", help="leave glibc's allocator thresholds as they are"
    )
    args = ap.parse_args()
    alloc = fixed_allocator(args.system_malloc)
    torch.set_num_threads(1)
    rounds, steps, mem_steps = (3, 20, 2000) if args.quick else (11, 60, 10_000)
    print(
        f"small CNN, batch 64 of 1x28x28, CPU, 1 thread; {alloc}; median of {rounds} rounds x {steps} steps\n"
    )
    print(f"{'variant':<16}{'ms/step':>10}{'x bare':>9}")
    for v, t, r in overhead(rounds, steps):
        print(f"{v:<16}{t * 1e3:>10.3f}{r:>9.3f}")
    s, rs, u, ru = sync_count()
    print("\nhost reads by nbdebug (each a device sync on a GPU), 200 steps, every=10:")
    print(
        f"  sampled steps   {s:>4}: {rs:>4} reads ({rs / max(s, 1):.1f} per step: layer numbers in one read; "
        "histograms are binned when drawn, 32 steps' at most in the loop)"
    )
    print(f"  unsampled steps {u:>4}: {ru:>4} reads ({ru / max(u, 1):.2f} per step; target <= 0.1)")
    print(f"\nmemory over {mem_steps} steps under watch (MLP, Adam):")
    print(f"{'step':>8}{'live tensors':>14}{'python heap MB':>16}")
    for i, n, mb in memory(mem_steps):
        print(f"{i:>8}{n:>14}{mb:>16.2f}")


if __name__ == "__main__":
    main()
