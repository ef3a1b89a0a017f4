"""Redraw throttling shared by the live results and their panels.

A live view must never slow the training it shows: it redraws at most every `interval` seconds and never
for more than ~10% of the wall time (the next redraw waits at least `share_inverse` times as long as the
last one took).
"""

from __future__ import annotations

import math
import time


class Throttle:
    """`due()` says whether a redraw may run now; `done(started)` records what the redraw cost."""

    def __init__(self, interval: float = 0.5, share_inverse: float = 10.0) -> None:
        self.interval = interval
        self.share_inverse = share_inverse
        self.last = -math.inf
        self.cost = 0.0
        self.count = 0

    def due(self, now: float | None = None) -> bool:
        now = time.perf_counter() if now is None else now
        return now - self.last >= max(self.interval, self.share_inverse * self.cost)

    def done(self, started: float) -> None:
        self.last = time.perf_counter()
        self.cost = self.last - started
        self.count += 1

    def reset(self) -> None:
        """Make the next `due()` true (a final redraw, or a new finding that must show at once)."""
        self.last = -math.inf
