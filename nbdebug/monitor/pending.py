"""Per-step values kept on the device until a batched read, so that the monitor adds no host-device
synchronization on the steps it does not sample.

Every optimizer step has a loss and a total gradient norm. Reading either as a Python float (`float()`,
`.item()`, `.tolist()`, `bool(...)`) makes the host wait until the GPU has finished the step: done every
step, that stall costs far more than the monitor's own work. So a step's loss and gradient norms stay
0-dim device tensors in a `PendingReads` queue, and `read()` turns the whole queue into numbers with one
`tolist()` per device: on sampled steps, at live redraws, at epoch ends and at the end of the run (whoever
reads `StepMonitor.steps` triggers it). Non-finite values are therefore found at the next read, at most
`every` steps late; the step they happened at is still exact, and the input of each unread step is kept
(a reference, not a copy, up to `KEEP_INPUT_BYTES`) so the forward can be replayed on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._core.tensors import stack_floats
from .records import StepRecord

KEEP_INPUT_BYTES = (
    64 * 2**20
)  # inputs of unread steps kept for the non-finite replay, beyond: the latest only


@dataclass
class LeakFlags:
    """Which parameters' .grad carried the previous step's gradient into this step: True, or a device
    bool tensor when the gradient was modified in place (zero_()) and whether it was zeroed is unread."""

    index: list[int]
    flags: list[bool | torch.Tensor]


@dataclass
class Unread:
    """One step whose numbers are still on the device."""

    rec: StepRecord
    loss: torch.Tensor | None  # 0-dim: the summed loss backward'd since the previous step
    norm: torch.Tensor | None  # 0-dim: total gradient norm
    per: torch.Tensor | None  # per-parameter gradient norms (for naming non-finite gradients)
    present: list[int]  # which parameters `per` covers
    inputs: tuple | None  # the step's model input (a reference) for the replay: `StepMonitor._last_input`
    late: bool = False  # read after the step's update (not on its own sampled step)
    leaks: LeakFlags | None = None  # parameters whose gradient may have carried the previous step's


@dataclass
class Read:
    """What a batched read found: the first step with a non-finite loss or gradient norm, if any."""

    loss_step: Unread | None = None
    grad_step: Unread | None = None
    grad_norms: list[float] | None = None  # per parameter, NaN where it had no gradient


class PendingReads:
    """The queue of unread steps (see the module docstring)."""

    def __init__(self) -> None:
        self.queue: list[Unread] = []
        self.read_count = 0  # records read so far (records are read in order)
        self.input_bytes = 0  # bytes of the inputs the queue keeps
        self.leaked: list[int] = []  # parameter indices found leaking, one per leaking step (tables.read)

    def add(self, entry: Unread) -> None:
        self.queue.append(entry)
        if entry.late and entry.inputs is not None:
            self.input_bytes += _nbytes(entry.inputs)
            if self.input_bytes > KEEP_INPUT_BYTES:
                self._bound_inputs()

    def drop(self, rec: StepRecord) -> None:
        """A retracted record (a backward that turned out to be analysis): never read, or no longer counted."""
        before = len(self.queue)
        self.queue = [u for u in self.queue if u.rec is not rec]
        if len(self.queue) == before:
            self.read_count -= 1

    def _bound_inputs(self) -> None:
        """Drop the oldest kept inputs until those kept fit KEEP_INPUT_BYTES (the latest always stays)."""
        total = 0
        for u in reversed(self.queue):
            if u.inputs is None or not u.late:
                continue
            size = _nbytes(u.inputs)
            if total + size > KEEP_INPUT_BYTES and u is not self.queue[-1]:
                u.inputs = None
            else:
                total += size
        self.input_bytes = total

    def read(self, n_params: int) -> Read:
        """Turn every queued value into a float (one `tolist()` per device) and say where the first
        non-finite loss or gradient norm is."""
        batch, self.queue = self.queue, []
        self.input_bytes = 0
        if not batch:
            return Read()
        slots: dict[torch.device, list[tuple[Any, Any, torch.Tensor]]] = {}
        for u in batch:
            for name, t in (("loss", u.loss), ("grad_norm", u.norm)):
                if t is not None:
                    slots.setdefault(t.device, []).append((u.rec, name, t))
            if u.leaks is not None:
                u.rec.leaked = 0
                for k, f in enumerate(u.leaks.flags):
                    if isinstance(f, torch.Tensor):
                        slots.setdefault(f.device, []).append((u, k, f))
        for items in slots.values():
            # losses and norms are kept as 0-dim float32 already: converted only where not (a leak flag)
            values = stack_floats([t for _, _, t in items]).tolist()
            for (owner, name, _), v in zip(items, values):
                if isinstance(owner, Unread):  # a leak flag, read: True when the gradient was not zeroed
                    owner.leaks.flags[name] = bool(v)
                else:
                    setattr(owner, name, v)
        for u in batch:
            if u.leaks is not None:
                leaked = [i for i, f in zip(u.leaks.index, u.leaks.flags) if f is True]
                u.rec.leaked = len(leaked)
                self.leaked.extend(leaked)
        self.read_count += len(batch)
        found = Read()
        for u in batch:
            if not math.isfinite(u.rec.loss) and u.loss is not None:
                found.loss_step = u
                break
            if not math.isfinite(u.rec.grad_norm) and u.per is not None:
                full = [math.nan] * n_params
                for i, v in zip(u.present, u.per.tolist()):  # rare: only at the first non-finite step
                    full[i] = v
                found.grad_step, found.grad_norms = u, full
                break
        return found


def _nbytes(inputs: tuple) -> int:
    args, kwargs = inputs[0], inputs[1]
    return sum(a.numel() * a.element_size() for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
