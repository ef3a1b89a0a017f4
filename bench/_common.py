"""Shared helpers for the benchmarks: medians of interleaved runs, machine description, RSS."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"


def interleaved(
    fns: dict[str, Callable[[], object]], repeat: int, warmup: int = 1, shuffle: bool = False
) -> dict[str, float]:
    """Median seconds of each function, run in turn (A, B, C, A, B, C, ...) so drift hits all alike.

    `shuffle=True` runs each round in a different (seeded) order, so that no function always follows the
    same neighbour: after a run that frees a lot of memory, the next one pays for the allocator growing.
    """
    import random

    order = random.Random(0)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        items = list(fns.items())
        if shuffle:
            order.shuffle(items)
        for k, fn in items:
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
