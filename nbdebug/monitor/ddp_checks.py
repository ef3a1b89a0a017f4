"""Findings no single process can give: the ranks of a DistributedDataParallel run compared with each other.

Pure functions of what `monitor/distributed.py` gathered: one `RankSample` per rank at each sampled step
(and one more at the end of the run), never activations. Thresholds are in the catalogue with their source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .._core.findings import Finding

STATE_TOL = 1e-6  # relative difference of a tensor's sum / norm across ranks (DDP keeps them bitwise equal)
DUPLICATE_SAMPLES = 2  # sampled steps with identical batches on two ranks
STRAGGLER_SCORE = 0.5  # fastest rank's local time / this rank's (NVIDIA resiliency-ext's relative score)
STRAGGLER_MIN_S = 0.005  # and at least 5 ms per step slower: timing noise of tiny steps is not a straggler
STRAGGLER_GATHERS = 2  # on this many gathers in a row, or over the whole run


@dataclass
class RankSample:
    """What one rank sends at one gather (all small: a few numbers per tensor, no activation)."""

    rank: int
    step: int
    batch: list[float] | None = None  # fingerprint of the step's first input tensor
    state: list[float] | None = None  # (sum, norm) per parameter, then per buffer, as the forward used them
    unused: list[int] | None = None  # parameter indices the loss did not reach on this rank (None: not seen)
    local_s: float = 0.0  # data loading + forward time since the previous gather (up to each backward)
    local_steps: int = 0
    sampler: list[tuple[int, bool, int]] = field(
        default_factory=list
    )  # (step count, shuffle, epoch) per pass
    distributed_sampler: bool | None = None  # the training loader's sampler is a DistributedSampler
    loss: float = math.nan
    codes: list[str] = field(default_factory=list)  # this rank's own warnings/errors (final gather)
    final: bool = False


def _f(code: str, severity: str, message: str, hint: str, where: str | None = None, **ev: Any) -> Finding:
    return Finding(code, severity, message, hint, where, ev)  # type: ignore[arg-type]


def _rel_diff(a: list[float], b: list[float]) -> list[float]:
    """Per tensor: |sum_a - sum_b| + |norm_a - norm_b|, relative to the larger norm."""
    out = []
    for i in range(0, min(len(a), len(b)) - 1, 2):
        scale = max(abs(a[i + 1]), abs(b[i + 1]), 1e-12)
        out.append((abs(a[i] - b[i]) + abs(a[i + 1] - b[i + 1])) / scale)
    return out


def check_duplicate_data(gathers: list[list[RankSample]], model: str) -> list[Finding]:
    """Ranks whose step inputs are identical at >= DUPLICATE_SAMPLES sampled steps."""
    same: list[tuple[int, list[int]]] = []
    for ranks in gathers:
        fps = [(s.rank, tuple(s.batch)) for s in ranks if s.batch]
        groups: dict[tuple, list[int]] = {}
        for r, fp in fps:
            groups.setdefault(fp, []).append(r)
        dup = sorted(r for g in groups.values() if len(g) > 1 for r in g)
        if dup:
            same.append((ranks[0].step, dup))
    if len(same) < DUPLICATE_SAMPLES:
        return []
    last = gathers[-1]
    samplers = {s.rank: s.distributed_sampler for s in last}
    without = sorted(r for r, d in samplers.items() if d is False)
    why = (
        f"; the training DataLoader of rank(s) {without} has no DistributedSampler, so every rank reads the "
        "whole dataset in the same order"
        if without
        else ""
    )
    ranks = same[-1][1]
    return [
        _f(
            "ddp-duplicate-data",
            "error",
            f"ranks {ranks} trained on identical batches at {len(same)} of {len(gathers)} sampled steps (last: "
            f"step {same[-1][0]}){why}: each step averages the same gradient {len(ranks)} times, and an epoch "
            "sees each example once per rank instead of once in all",
            "give the DataLoader a sampler=torch.utils.data.DistributedSampler(dataset) (and shuffle=False on the "
            "loader), so that each rank reads its own share",
            "data",
            ranks=ranks,
            steps=[s for s, _ in same],
        )
    ]


def check_sampler_epoch(gathers: list[list[RankSample]]) -> list[Finding]:
    """A shuffling DistributedSampler whose epoch did not change between two passes over the loader."""
    if not gathers:
        return []
    for s in gathers[-1]:
        passes = [p for p in s.sampler if p[1]]  # shuffle=True passes
        for (n0, _, e0), (n1, _, e1) in zip(passes, passes[1:]):
            if e0 == e1:
                return [
                    _f(
                        "ddp-sampler-epoch",
                        "warning",
                        f"the DistributedSampler of the training DataLoader was at epoch {e1} for two passes "
                        f"(the one starting after step {n0} and the one after step {n1}; {len(passes)} passes in "
                        "all): it shuffles with seed + epoch, so every epoch repeats the same order",
                        "call sampler.set_epoch(epoch) at the start of each epoch, before iterating the "
                        "DataLoader",
                        "data",
                        epoch=e1,
                        passes=len(passes),
                        rank=s.rank,
                    )
                ]
    return []


def check_params_diverged(gathers: list[list[RankSample]], names: list[str], n_params: int) -> list[Finding]:
    """Parameters or buffers (as a forward used them) that differ between ranks at a sampled step."""
    for ranks in gathers:
        ref = next((s for s in ranks if s.state), None)
        if ref is None:
            continue
        worst: dict[int, float] = {}
        other = -1
        for s in ranks:
            if s is ref or not s.state:
                continue
            for i, d in enumerate(_rel_diff(ref.state, s.state)):
                if d > STATE_TOL and d > worst.get(i, 0.0):
                    worst[i], other = d, s.rank
        if not worst:
            continue
        bad = sorted(worst, key=lambda i: -worst[i])
        params = [names[i] for i in bad if i < n_params]
        buffers = [names[i] for i in bad if i >= n_params]
        listed = params + buffers
        shown = ", ".join(listed[:4]) + (", ..." if len(listed) > 4 else "")
        if params:
            hint = (
                "wrap the model once in DistributedDataParallel and call the DDP wrapper (not .module) in "
                "forward; build the optimizer on the same parameters on every rank; do not change weights on "
                "one rank only"
            )
        else:
            hint = (
                "convert BatchNorm layers with torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) before "
                "wrapping, or keep DistributedDataParallel's buffer sync on (broadcast_buffers / "
                "forward_sync_buffers, on by default)"
            )
        what = " and ".join(
            f"{len(x)} {kind}" for x, kind in ((params, "parameters"), (buffers, "buffers")) if x
        )
        return [
            _f(
                "ddp-params-diverged",
                "error" if params else "warning",
                f"{what} differ between rank {ref.rank} and rank {other} at step {ranks[0].step} "
                f"(relative difference up to {max(worst.values()):.2g}): {shown}; DDP keeps every replica "
                "identical, so the ranks now train different models"
                + ("" if params else " (each rank's BatchNorm keeps its own running statistics)"),
                hint,
                (params or buffers)[0].rsplit(".", 1)[0],
                params=params,
                buffers=buffers,
                step=ranks[0].step,
            )
        ]
    return []


def check_unused_parameters(gathers: list[list[RankSample]], names: list[str]) -> list[Finding]:
    """Parameters the loss did not reach on some (or every) rank at a sampled step."""
    seen = [s for ranks in gathers for s in ranks if s.unused is not None]
    if not seen:
        return []
    ranks_of: dict[int, set[int]] = {}
    for s in seen:
        for i in s.unused or []:
            ranks_of.setdefault(i, set()).add(s.rank)
    if not ranks_of:
        return []
    all_ranks = {s.rank for s in seen}
    some = sorted(i for i, r in ranks_of.items() if r != all_ranks)
    every = sorted(i for i, r in ranks_of.items() if r == all_ranks)
    parts = []
    if some:
        parts.append(
            f"{', '.join(names[i] for i in some[:4])}{', ...' if len(some) > 4 else ''} got no gradient on rank(s) "
            f"{sorted(set().union(*(ranks_of[i] for i in some)))} only"
        )
    if every:
        parts.append(
            f"{', '.join(names[i] for i in every[:4])}{', ...' if len(every) > 4 else ''} on every rank"
        )
    bad = some + every
    return [
        _f(
            "ddp-unused-parameters",
            "warning",
            f"{len(bad)} parameter(s) were not reached by the loss at sampled steps: {'; '.join(parts)}. DDP's "
            "find_unused_parameters=True hides this: their gradient is averaged as zero from the ranks that "
            "skipped them, so they learn at a fraction of the rate, or not at all",
            "make every rank run the same layers (no data-dependent branches that skip a layer), remove layers "
            "the forward never uses, or freeze them with requires_grad_(False) before wrapping in DDP",
            names[bad[0]].rsplit(".", 1)[0],
            params=[names[i] for i in bad],
        )
    ]


def _straggler(window: list[RankSample]) -> tuple[int, float, float, float] | None:
    """(rank, score, its s/step, fastest s/step) of the slowest rank if it is a straggler in `window`."""
    per = {s.rank: s.local_s / s.local_steps for s in window if s.local_steps > 0}
    if len(per) < 2:
        return None
    fastest = min(per.values())
    rank, slowest = max(per.items(), key=lambda kv: kv[1])
    score = fastest / slowest if slowest > 0 else 1.0
    if score < STRAGGLER_SCORE and slowest - fastest >= STRAGGLER_MIN_S:
        return rank, score, slowest, fastest
    return None


def check_straggler(gathers: list[list[RankSample]], totals: list[RankSample] | None) -> list[Finding]:
    """One rank's data loading + forward time per step far above the fastest rank's."""
    hit = _straggler(totals) if totals else None
    if hit is None:
        windows = [w for w in (_straggler(g) for g in gathers[-STRAGGLER_GATHERS:]) if w]
        if len(windows) < STRAGGLER_GATHERS or len({w[0] for w in windows}) != 1:
            return []
        hit = windows[-1]
    rank, score, slow, fast = hit
    return [
        _f(
            "ddp-straggler",
            "warning",
            f"rank {rank} spends {slow * 1e3:.1f} ms per step loading data and running the forward pass against "
            f"{fast * 1e3:.1f} ms on the fastest rank (relative score {score:.2f}): every other rank waits for it "
            "at each gradient all-reduce",
            "look at that rank's data loading (num_workers, a slow disk or transform) and its device (shared, "
            "throttled or a slower GPU); give it the same batch size and work as the others",
            f"rank {rank}",
            rank=rank,
            score=score,
        )
    ]
