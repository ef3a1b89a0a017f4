"""Shared helpers for the benchmarks: medians of interleaved runs, machine description, RSS."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def draw_histograms(w) -> None:
    """What a user who looks at one histogram pays: `Watch.histograms` bins every histogram the run kept
    (nbdebug/monitor/histqueue.py), so the benchmarks time it with the run."""
    if w is not None and w.layers():
        w.histograms(w.layers()[0])


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


READS = ("item", "__float__", "__bool__", "__int__", "tolist")


class ReadCounter:
    """Counts the reads of a tensor's value to the host that nbdebug's own code makes (`Tensor.item`,
    `__float__`, `__bool__`, `__int__`, `tolist`): on a GPU each one waits for the device. Reads by the
    optimizer, the DataLoader or the user's loop are left out (no nbdebug frame on the stack). Counting
    happens while `on` is True; `with ReadCounter() as c:` patches torch.Tensor and puts it back."""

    def __init__(self) -> None:
        self.on = False
        self.reads: list[tuple[str, str]] = []  # (method, nbdebug file:line)
        self._saved: dict[str, object] = {}

    def __enter__(self) -> ReadCounter:
        import torch

        self._saved = {n: getattr(torch.Tensor, n) for n in READS}
        for n in READS:
            setattr(torch.Tensor, n, self._wrap(n, self._saved[n]))
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        for n, f in self._saved.items():
            setattr(torch.Tensor, n, f)

    def _wrap(self, name: str, original):
        import traceback

        counter = self

        def read(tensor, *args, **kwargs):
            if counter.on:
                ours = [
                    f
                    for f in traceback.extract_stack()[:-1]
                    if "/nbdebug/" in f.filename.replace("\\", "/") and "/tests/" not in f.filename
                ]
                # a torch-function mode's handler dispatching someone else's call (the optimizer's
                # `step.item()` while a mode is on) is not a read nbdebug makes
                if ours and ours[-1].name != "__torch_function__":
                    counter.reads.append(
                        (name, f"{ours[-1].filename.split('nbdebug/')[-1]}:{ours[-1].lineno}")
                    )
            return original(tensor, *args, **kwargs)

        return read


# glibc's allocator, held fixed for overhead benchmarks: with its default thresholds, whether freed activation
# buffers go back to the kernel (and fault in again, ~2 us a page) changes from run to run of the same code
# (bare Lightning: 800 to 100,000 page faults and 11.1 to 15.4 ms a step, measured), a spread that hides a
# 10% target. Raised thresholds keep freed memory in the process for every variant alike.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 32), "MALLOC_TRIM_THRESHOLD_": str(1 << 32)}


def fixed_allocator(system_malloc: bool) -> str:
    """Run this script again with FIXED_MALLOC in its environment (unless `system_malloc` or already so);
    returns how the allocator is set, for the report's header."""
    if system_malloc:
        return "glibc allocator defaults"
    if any(os.environ.get(k) != v for k, v in FIXED_MALLOC.items()):
        raise SystemExit(subprocess.call([sys.executable, *sys.argv], env={**os.environ, **FIXED_MALLOC}))
    return "allocator thresholds fixed (bench/_common.py FIXED_MALLOC)"


def resource_faults() -> int:
    """Minor page faults of this process so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class OwnTime:
    """nbdebug's own time inside a block: every hook nbdebug registers on modules and optimizers, every
    interception it dispatches (`_core/intercept.py`), a step recorded after a closure (Lightning),
    `watch`'s enter and exit and the histograms drawn after it (`draw_histograms`), each timed with `perf_counter`, nested calls counted once. A wall-time ratio
    of two runs moves by several percent with the machine (the training step drifts 10-20% between runs on
    a shared host); this sum over nbdebug's own calls does not, so it shows where the overhead stands and
    whether a change moved it. A lower bound: PyTorch's slower call path for a hooked module and the
    wrappers' frames are not in it (the wall ratio has them). Install it before the watch starts."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._depth = 0
        self._undo: list[tuple[object, str, object]] = []

    def _timed(self, fn: Callable) -> Callable:
        import functools

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.seconds += time.perf_counter() - start

        return timed

    def _patch(self, owner: object, name: str, new: object) -> None:
        self._undo.append(
            (owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
        )
        setattr(owner, name, new)

    def __enter__(self) -> OwnTime:
        import torch
        import torch.optim.optimizer as optim_module
        from torch import nn

        from nbdebug._core import intercept
        from nbdebug.monitor.stats import StepMonitor
        from nbdebug.monitor.watch import Watch

        def ours(fn: object) -> bool:
            owner = getattr(fn, "__func__", fn)
            return (getattr(owner, "__module__", None) or "").startswith("nbdebug")

        def registrar(original: Callable, bound: bool) -> Callable:
            if bound:
                return lambda obj, fn, *a, **k: original(obj, self._timed(fn) if ours(fn) else fn, *a, **k)
            return lambda fn, *a, **k: original(self._timed(fn) if ours(fn) else fn, *a, **k)

        for owner, name in (
            (nn.Module, "register_forward_hook"),
            (nn.Module, "register_forward_pre_hook"),
            (torch.optim.Optimizer, "register_step_pre_hook"),
            (torch.optim.Optimizer, "register_step_post_hook"),
        ):
            self._patch(owner, name, registrar(getattr(owner, name), bound=True))
        for name in ("register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"):
            self._patch(optim_module, name, registrar(getattr(optim_module, name), bound=False))
        self._patch(intercept, "_notify", self._timed(intercept._notify))
        for owner, name in (
            (StepMonitor, "_step_pre"),
            (Watch, "__enter__"),
            (Watch, "__exit__"),
            (Watch, "histograms"),  # binning the run's histograms when they are drawn (draw_histograms)
        ):
            self._patch(owner, name, self._timed(getattr(owner, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)
