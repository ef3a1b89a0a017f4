"""Live memory samples while other cells run: the `watch -n 0.1 nvidia-smi` replacement.

A daemon thread samples every `interval` seconds for at most `seconds`, then stops itself; the kernel
never waits on it. On CUDA it reads the allocator (allocated, reserved; GPU-ONLY path); without CUDA it
samples the process's resident memory, so the same view works on a laptop.
"""

from __future__ import annotations

import html
import os
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from .._core.errors import NbdebugError
from .._core.result import Result
from .._core.units import fmt_bytes


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the watch started
    allocated: int  # CUDA: bytes held by tensors; CPU: process resident memory
    reserved: int  # CUDA: bytes held by the caching allocator; CPU: same as allocated


def _rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def sampler(device: str | None = None) -> tuple[str, Callable[[], tuple[int, int]]]:
    """(source description, function returning (allocated, reserved)) for `device` or the best default."""
    if device is None:
        use_cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        device = "cuda" if use_cuda else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":  # GPU-ONLY
        if not torch.cuda.is_available():
            raise NbdebugError(f"cannot watch {device}: torch.cuda.is_available() is False")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} allocator", lambda: (
            torch.cuda.memory_allocated(index),
            torch.cuda.memory_reserved(index),
        )
    if dev.type == "cpu":
        return "process resident memory (CPU)", lambda: (_rss(), _rss())
    raise NbdebugError(f"cannot watch device {device!r}: use 'cpu' or 'cuda[:N]'")


class MemoryWatch(Result):
    """Samples memory in a background thread; `stop()` or the time limit ends it."""

    def __init__(self, interval: float = 0.1, seconds: float = 60.0, device: str | None = None) -> None:
        if not interval > 0 or not seconds > 0:
            raise NbdebugError(f"interval and seconds must be positive, got {interval!r} and {seconds!r}")
        self.interval = float(interval)
        self.seconds = float(seconds)
        self.source, self._read = sampler(device)
        self.samples: list[Sample] = []
        self.listeners: list[Callable[[MemoryWatch], None]] = []
        self.internal_errors: list[str] = []  # a listener (a live view) that raised, once each
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> MemoryWatch:
        if self.running:
            return self
        self._stop.clear()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="nbdebug-memory-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        deadline = self._t0 + self.seconds
        while not self._stop.is_set():
            now = time.monotonic()
            allocated, reserved = self._read()
            self.samples.append(Sample(now - self._t0, allocated, reserved))
            self._notify()
            if now >= deadline:
                break
            self._stop.wait(self.interval)
        self._stop.set()
        self._notify()  # one last notification: the watch has ended

    def _notify(self) -> None:
        for listener in list(self.listeners):
            try:
                listener(self)
            except Exception as e:  # a broken view must not kill the sampler: drop it, say so once
                self.listeners.remove(listener)
                self.internal_errors.append(
                    f"{getattr(listener, '__qualname__', listener)}: {type(e).__name__}: {e}"
                )

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([vars(s) for s in self.samples], columns=["t", "allocated", "reserved"])

    def summary(self) -> str:
        state = "running" if self.running else "stopped"
        last = self.samples[-1] if self.samples else None
        now = f", allocated {fmt_bytes(last.allocated)}, reserved {fmt_bytes(last.reserved)}" if last else ""
        return f"memory watch ({state}): {self.source}, {len(self.samples)} samples{now}"

    def to_text(self) -> str:
        errors = "".join(f"\ninternal error (please report it): {e}" for e in self.internal_errors)
        return self.summary() + errors

    def _html_key(self) -> Hashable:
        return (self.running, len(self.samples))

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import watch_figure

        img = png_html(figure_png(watch_figure(self)), alt="memory over time") if self.samples else ""
        return f'<div class="nbdebug-memory-watch"><b>{html.escape(self.summary())}</b>{img}</div>'

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"MemoryWatch({self.source}, {len(self.samples)} samples, {state})"


def watch(interval: float = 0.1, seconds: float = 60.0, device: str | None = None) -> MemoryWatch:
    """Start sampling memory every `interval` s for `seconds` s in the background; returns the watch."""
    return MemoryWatch(interval=interval, seconds=seconds, device=device).start()
