"""`nbdebug.watch` inside each rank of a DistributedDataParallel run: the ranks compared, one result.

Each rank wraps its loop in `nbdebug.watch(ddp_model, optimizer)` as usual. When `torch.distributed` is
initialized with more than one process, `watch` returns a `DistributedWatch`: the rank's own monitor as
everywhere, plus a probe that keeps a few numbers per sampled step (`RankSample`): a fingerprint of the
step's input batch, the sum and norm of every parameter and buffer as the forward used them (after DDP's
buffer broadcast), which parameters the loss reached (its autograd graph), the time spent loading data
and running the forward pass, and the passes of the training loader's DistributedSampler. Never an
activation.

Gathering adds no per-step synchronization: the ranks exchange their samples with `all_gather_object` only
at the monitor's sampled steps (the first and every `every`-th, the same steps on every rank, since DDP
steps them together) and once at the end of the run, over a separate gloo group with a 60 s timeout (so a
rank that fails never leaves the others waiting longer). `monitor/ddp_checks.py` turns the samples into
the `ddp-*` findings, which every rank records with its own; `w.ranks` is the per-rank table.

How the notebook gets one result: launch with a fork-based launcher (`torch.multiprocessing.start_processes(
..., start_method="fork")`, `accelerate.notebook_launcher`) inside `with nbdebug.watch_ranks() as run:`.
That context sets `NBDEBUG_RANKS_DIR` for the children; each rank's watch writes its final result there
(a snapshot: findings, history, epochs, layer statistics, per-rank table), and `run` in the notebook is
rank 0's, with every rank's attached (`run.rank_results`). Under `torchrun` (no notebook), rank 0's `w` is
the result.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from datetime import timedelta
from typing import Any

import torch

from .._core.findings import Finding
from .._core.hooks import HookSet
from .._core.tensors import first_tensor
from .ddp_checks import (
    RankSample,
    check_duplicate_data,
    check_params_diverged,
    check_sampler_epoch,
    check_straggler,
    check_unused_parameters,
)
from .watch import Watch

ENV_DIR = "NBDEBUG_RANKS_DIR"  # set by `watch_ranks()` in the notebook, inherited by the launched ranks
GATHER_TIMEOUT = timedelta(seconds=60)
FINGERPRINT_VALUES = 64


def distributed_world() -> tuple[int, int] | None:
    """(rank, world size) when torch.distributed is initialized with more than one process, else None."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    size = dist.get_world_size()
    return (dist.get_rank(), size) if size > 1 else None


def batch_fingerprint(x: torch.Tensor) -> list[float]:
    """Sum, sum of squares and 64 strided values of a batch: equal batches give equal lists, different
    ones (almost surely) differ. One small device-to-host copy, on sampled steps only."""
    flat = x.detach().reshape(-1)
    step = max(flat.numel() // FINGERPRINT_VALUES, 1)
    f = flat.double() if flat.is_floating_point() else flat.to(torch.float64)
    head = torch.stack([f.sum(), f.pow(2).sum()])
    return torch.cat([head, f[::step][:FINGERPRINT_VALUES]]).tolist()


def state_fingerprint(tensors: list[torch.Tensor]) -> list[float]:
    """(sum, norm) of each tensor, in float64 (two numbers per parameter or buffer)."""
    if not tensors:
        return []
    with torch.no_grad():
        parts = [torch.stack([t.detach().double().sum(), t.detach().double().norm()]) for t in tensors]
        return torch.cat(parts).tolist()


def reached_leaves(tensors: tuple[torch.Tensor, ...]) -> set[int]:
    """ids of the leaf tensors (parameters) the autograd graph of `tensors` reaches."""
    seen: set[Any] = set()
    out: set[int] = set()
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None:
            out.add(id(var))
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return out


class DistributedWatch(Watch):
    """A rank's `Watch` that compares itself with the other ranks (see the module docstring)."""

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        world = distributed_world()
        self.rank, self.world_size = world if world is not None else (0, 1)
        m = self.monitor
        self._buffers = [b for _, b in m.model.named_buffers()]
        self._state_names = [m._param_names.get(p, f"param{i}") for i, p in enumerate(m.params)]
        self._state_names += [n for n, _ in m.model.named_buffers()]
        self.gathers: list[list[RankSample]] = []
        self.totals: list[RankSample] | None = None
        self._sample = RankSample(self.rank, 1)
        self._local_s, self._local_steps = 0.0, 0
        self._step_end = math.nan  # when the last step ended: the next step's data loading starts
        self._t_forward = math.nan  # when this step's forward started computing
        self._forward_seen = False
        self._passes: list[tuple[int, bool, int]] = []
        self._distributed_sampler: bool | None = None
        self._group: Any = None
        self._total_s, self._total_steps = 0.0, 0
        self.gather_errors: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------------
    def __enter__(self) -> DistributedWatch:
        try:  # a collective: every rank enters its watch at the same point of its program
            self._group = torch.distributed.new_group(backend="gloo", timeout=GATHER_TIMEOUT)
        except Exception as e:
            self.gather_errors.append(f"new_group: {type(e).__name__}: {e}")
        super().__enter__()
        self._step_end = time.perf_counter()
        return self

    def _attach(self, hooks: HookSet) -> None:
        super()._attach(hooks)
        if self.monitor.root is not self.monitor.model:
            hooks.forward_pre(self.monitor.root, self._outer_pre)
        # after DDP's forward has broadcast the buffers: what this step's forward really uses
        hooks.forward_pre(self.monitor.model, self._inner_pre, with_kwargs=True)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and self._group is not None:
            self._gather(final=True)
        super().__exit__(exc_type, exc, tb)
        self._publish()

    # -- per-rank observations -----------------------------------------------------------------------
    # A rank's own time per step, without waiting for the others: from the end of a step to the DDP forward
    # (data loading), then from inside it (after its buffer broadcast, a collective) to the backward
    # (the forward's compute). The backward holds the gradient all-reduce: the fast ranks wait there.
    def _clock_data(self, now: float) -> None:
        if math.isfinite(self._step_end):
            self._local_s += now - self._step_end
            self._step_end = math.nan

    def _outer_pre(self, module: Any, args: tuple) -> None:
        if torch.is_grad_enabled() and not self.monitor._in_step:
            self._clock_data(time.perf_counter())
        return None

    def _inner_pre(self, module: Any, args: tuple, kwargs: dict) -> None:
        if torch.is_grad_enabled() and not self.monitor._in_step:
            self._t_forward = time.perf_counter()
            self._clock_data(self._t_forward)  # the DDP wrapper bypassed: no outer call was seen
        try:
            if not torch.is_grad_enabled() or not self.monitor.sampling or self._forward_seen:
                return None
            self._forward_seen = True
            x = first_tensor(args) if args else first_tensor(kwargs)
            if isinstance(x, torch.Tensor) and x.numel():
                self._sample.batch = batch_fingerprint(x)
            self._sample.state = state_fingerprint([*self.monitor.params, *self._buffers])
        except Exception as e:
            self.internal_errors.append(f"ddp probe: {type(e).__name__}: {e}")
        return None

    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None:
        if phase == "start" and not self.monitor._in_step:
            if math.isfinite(self._t_forward):
                self._local_s += time.perf_counter() - self._t_forward
                self._t_forward = math.nan
            if self.monitor.sampling and self._sample.unused is None:
                try:
                    reached = reached_leaves(tensors)
                    self._sample.unused = [
                        i for i, p in enumerate(self.monitor.params) if id(p) not in reached
                    ]
                except Exception as e:
                    self.internal_errors.append(f"ddp graph: {type(e).__name__}: {e}")
        super().on_backward(tensors, phase)

    def on_loader_iter(self, loader: Any) -> None:
        super().on_loader_iter(loader)
        if not torch.is_grad_enabled():
            return
        sampler = getattr(loader, "sampler", None)
        dist_sampler = isinstance(sampler, torch.utils.data.distributed.DistributedSampler)
        train = self._train_loader() if self._train_loader is not None else loader
        if train is not loader:
            return
        self._distributed_sampler = dist_sampler
        if dist_sampler:
            self._passes.append((self.monitor.count, bool(sampler.shuffle), int(sampler.epoch)))

    def _after_step(self, monitor: Any, rec: Any) -> None:
        self._local_steps += 1
        self._step_end = time.perf_counter()
        self._forward_seen = False
        if rec.step in monitor.samples and self._group is not None:
            self._gather(final=False)
        super()._after_step(monitor, rec)

    # -- gathering -----------------------------------------------------------------------------------
    def _take_sample(self, final: bool) -> RankSample:
        s, self._sample = self._sample, RankSample(self.rank, self.monitor.count + 1)
        s.step = self.monitor.count
        s.local_s, s.local_steps = self._local_s, self._local_steps
        s.sampler, s.distributed_sampler = list(self._passes), self._distributed_sampler
        losses = [r.loss for r in self.monitor.steps[-10:] if math.isfinite(r.loss)]
        s.loss = sum(losses) / len(losses) if losses else math.nan
        s.final = final
        if final:
            s.codes = sorted({f.code for f in self.findings if f.severity != "info"})
            # parameters only: each forward updates its rank's batch-norm statistics after DDP synced them,
            # so buffers are compared as the forward passes used them (sampled steps), not here
            s.state = state_fingerprint(list(self.monitor.params))
            s.local_s, s.local_steps = self._total_s, self._total_steps
        else:
            self._total_s += self._local_s
            self._total_steps += self._local_steps
            self._local_s, self._local_steps = 0.0, 0
        return s

    def _gather(self, final: bool) -> None:
        if final:
            self._total_s += self._local_s
            self._total_steps += self._local_steps
        mine = self._take_sample(final)
        out: list[Any] = [None] * self.world_size
        try:
            torch.distributed.all_gather_object(out, mine, group=self._group)
        except Exception as e:  # a rank that stopped: keep what we have, never hang or break the training
            self.gather_errors.append(f"all_gather at step {mine.step}: {type(e).__name__}: {e}")
            self._group = None
            return
        ranks = sorted((s for s in out if isinstance(s, RankSample)), key=lambda s: s.rank)
        if final:
            self.totals = ranks
        else:
            self.gathers.append(ranks)

    def _extra_findings(self) -> list[Finding]:
        gathers = self.gathers + ([self.totals] if self.totals else [])
        names, n = self._state_names, len(self.monitor.params)
        return [
            *check_duplicate_data(self.gathers, "model"),
            *check_sampler_epoch(gathers),
            *check_params_diverged(gathers, names, n),
            *check_unused_parameters(gathers, names),
            *check_straggler(self.gathers, self.totals),
        ]

    @property
    def ranks(self):
        """One row per rank: steps, recent loss, data + forward ms per step, its own warnings, and how its
        batches and model compare with the others' (from the gathered samples)."""
        import pandas as pd

        from .ddp_checks import _rel_diff

        last = self.totals or (self.gathers[-1] if self.gathers else [])
        sampled = self.gathers[-1] if self.gathers else last  # batches, buffers and graphs: sampled steps
        by_rank = {s.rank: s for s in sampled}
        rows = []
        ref = next((s for s in last if s.state), None)
        for s in last:
            seen = by_rank.get(s.rank, s)
            dup = [
                o.rank
                for o in sampled
                if o.rank != s.rank and o.batch and seen.batch and tuple(o.batch) == tuple(seen.batch)
            ]
            diff = _rel_diff(ref.state, s.state) if ref is not None and s.state else []
            diff += (
                _rel_diff(by_rank[ref.rank].state, seen.state)
                if ref is not None and ref.rank in by_rank and seen.state
                else []
            )
            rows.append(
                {
                    "rank": s.rank,
                    "steps": s.step,
                    "loss": s.loss,
                    "data+forward ms/step": 1e3 * s.local_s / s.local_steps if s.local_steps else math.nan,
                    "same batch as": dup,
                    "max state diff vs rank 0": max(diff) if diff else 0.0,
                    "unused params": len(seen.unused) if seen.unused is not None else None,
                    "its findings": s.codes,
                }
            )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        return f"{super().summary()} [rank {self.rank} of {self.world_size}]"

    # -- the notebook's copy ---------------------------------------------------------------------------
    def _publish(self) -> None:
        """Write this rank's final result where `watch_ranks()` in the notebook reads it."""
        where = os.environ.get(ENV_DIR)
        if not where or not os.path.isdir(where):
            return
        from .ranks_run import snapshot

        try:
            data = pickle.dumps(snapshot(self))
            tmp = os.path.join(where, f".rank{self.rank}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(where, f"rank{self.rank}.pkl"))
        except Exception as e:
            self.internal_errors.append(f"publish: {type(e).__name__}: {e}")
