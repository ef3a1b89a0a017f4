"""Reducing one tensor to a few numbers the monitor can keep: a deterministic subsample, a small histogram,
the fraction of dead ReLU units. Nothing here keeps a reference to the tensor."""

from __future__ import annotations

import math

import torch

SUBSAMPLE = 16384  # elements kept (by a fixed stride, no RNG) for std and fractions
HIST_SAMPLE = 4096  # of those, binned into a histogram (30 bins)


def subsample(t: torch.Tensor, n: int = SUBSAMPLE) -> torch.Tensor:
    """A deterministic strided view of at most ~n elements: distribution summaries (histograms, std,
    fractions) of a 1M-element activation are the same to a few tenths of a percent, 50x cheaper."""
    # (each call below is a dispatch that costs more than its work on these sizes: skipped when a no-op)
    flat = t.detach() if t.requires_grad else t
    flat = flat.reshape(-1) if flat.dim() != 1 else flat
    step = max(flat.numel() // n, 1)
    if step > 1:
        # a copy, not a strided view: a view would keep the whole activation alive until the step's numbers
        # are read, and the backward pass would then allocate fresh memory instead of reusing it (page faults
        # that cost more than the statistics themselves)
        flat = flat[::step]
        return flat.contiguous() if flat.dtype == torch.float32 else flat.float().contiguous()
    return flat if flat.dtype == torch.float32 else flat.float()


def histogram(t: torch.Tensor, bins: int) -> tuple[float, float, list[int]]:
    """(low, high, counts) of the finite values of a (subsampled) tensor: small enough to keep. At most
    HIST_SAMPLE values are binned (30 bins need no more), and the finite-value mask is only built when
    the range is not finite (it cost more than the histogram itself)."""
    flat = subsample(t, HIST_SAMPLE)
    lo_t, hi_t = torch.aminmax(flat)
    lo, hi = float(lo_t), float(hi_t)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        flat = flat[torch.isfinite(flat)]
        if flat.numel() == 0:
            return 0.0, 0.0, [0] * bins
        lo, hi = (float(v) for v in torch.aminmax(flat))
    if hi <= lo:
        hi = lo + 1e-12
    counts = torch.histc(flat, bins=bins, min=lo, max=hi)
    return lo, hi, [int(c) for c in counts.tolist()]


def batched_histograms(tensors: list[torch.Tensor], bins: int) -> list[tuple[float, float, list[int]]]:
    """`histogram` of each tensor. On an accelerator they are computed together, one segmented pass and one
    read to the host for all (a histogram per layer read its range and its counts: two device syncs per
    layer); on the CPU, where a read waits for nothing, one torch.histc per tensor is faster. Same bins
    as torch.histc either way: `bins` equal bins over [low, high], high included."""
    if not tensors:
        return []
    if tensors[0].device.type == "cpu":  # no device to wait for: torch.histc per tensor is fastest
        return _histc_each([subsample(t, HIST_SAMPLE) for t in tensors], bins)
    return segmented_histograms([subsample(t, HIST_SAMPLE) for t in tensors], bins)


def _histc_each(flats: list[torch.Tensor], bins: int) -> list[tuple[float, float, list[int]]]:
    """`histogram` of each 1-D tensor, with every range read at once and every count read at once (two
    reads to the host, not three per tensor: each read is a dispatch that costs more than the histogram)."""
    ranges = torch.stack([v for f in flats for v in torch.aminmax(f)]).tolist()
    out: list[tuple[float, float, list[int]] | None] = []
    counts = []
    for i, f in enumerate(flats):
        lo, hi = ranges[2 * i], ranges[2 * i + 1]
        if not (math.isfinite(lo) and math.isfinite(hi)):  # rare: the finite values' own range
            out.append(histogram(f, bins))
            continue
        hi = hi if hi > lo else lo + 1e-12
        out.append(None)
        counts.append((i, lo, hi, torch.histc(f, bins=bins, min=lo, max=hi)))
    read = torch.stack([c for *_, c in counts]).tolist() if counts else []
    for (i, lo, hi, _), row in zip(counts, read):
        out[i] = (lo, hi, [int(c) for c in row])
    return out  # type: ignore[return-value]


def segmented_histograms(flats: list[torch.Tensor], bins: int) -> list[tuple[float, float, list[int]]]:
    """The histograms of several 1-D tensors in one segmented pass (scatter min/max per tensor, one
    index_add of every value into its tensor's bins) and one read to the host."""
    device = flats[0].device
    flats = [f.to(device) for f in flats]
    seg = torch.cat([torch.full((f.numel(),), i, device=device) for i, f in enumerate(flats)])
    v = torch.cat(flats)
    finite = torch.isfinite(v)
    n = len(flats)
    big = torch.finfo(torch.float32).max
    lo = torch.full((n,), big, device=device).scatter_reduce(0, seg, torch.where(finite, v, big), "amin")
    hi = torch.full((n,), -big, device=device).scatter_reduce(0, seg, torch.where(finite, v, -big), "amax")
    empty = lo > hi  # no finite value
    lo, hi = torch.where(empty, 0.0, lo), torch.where(empty, 0.0, hi)
    width = torch.where(hi > lo, hi - lo, torch.full_like(hi, 1e-12))
    x = torch.where(finite, v, lo[seg])  # non-finite values: weight 0 below
    b = ((x - lo[seg]) / width[seg] * bins).floor().clamp(0, bins - 1).long()
    counts = torch.zeros(n * bins, device=device).index_add_(0, seg * bins + b, finite.float())
    flat = torch.cat([lo, torch.where(hi > lo, hi, lo + 1e-12), counts]).tolist()
    return [
        (flat[i], flat[n + i], [int(c) for c in flat[2 * n + i * bins : 2 * n + (i + 1) * bins]])
        for i in range(n)
    ]


def layer_histograms(
    grads: list[torch.Tensor | None], layers: dict[str, list[int]], scale: float | torch.Tensor, bins: int
) -> dict[str, tuple[float, float, list[int]]]:
    """Each layer's gradient histogram (its parameters' subsampled gradients together, divided by the
    GradScaler factor they still carry), all layers in one `batched_histograms` call."""
    parts = {
        layer: torch.cat([subsample(g) for g in (grads[i] for i in idx) if g is not None]).float() / scale
        for layer, idx in layers.items()
        if any(grads[i] is not None for i in idx)
    }
    return dict(zip(parts, batched_histograms(list(parts.values()), bins)))


def unit_maxima(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(`unit_dead_fraction(out)`, the sum of the unit maxima it took): a ReLU's output is >= 0 or NaN or
    +Inf, and a maximum keeps NaN and +Inf, so the sum is non-finite exactly when `out` has a non-finite
    value. One pass over a ReLU's output gives both (a separate `out.sum()` for the non-finite check cost as
    much again on every sampled step)."""
    if out.dim() < 2:
        top = out.max()
        return (top <= 0).float(), top.float()
    others = tuple(d for d in range(out.dim()) if d != 1)
    top = out.amax(dim=others)
    dead = (top <= 0).mean(dtype=torch.float32)
    if out.dim() == 3:  # (N, L, F) or (N, C, L): the smaller reading, as unit_dead_fraction (dim 1 is done)
        dead = torch.minimum(dead, (out.amax(dim=(0, 1)) <= 0).mean(dtype=torch.float32))
    return dead, top.sum(dtype=torch.float32)


def unit_dead_fraction(out: torch.Tensor) -> torch.Tensor:
    """Fraction of units (channels / features) of a ReLU output that are zero for every example, as a
    0-dim tensor (read with the rest of the sample).

    One pass: a unit is dead when its maximum over the batch (and positions) is 0, since a ReLU's
    output is >= 0. Units are dim 1 in PyTorch's channel-first layouts; for 3-D outputs (N, L, F) or
    (N, C, L) the smaller of the two readings is kept, so an ambiguous layout never inflates the count.
    """
    if out.dim() < 2:
        return (out.max() <= 0).float()

    def frac(dim: int) -> torch.Tensor:
        others = tuple(d for d in range(out.dim()) if d != dim)
        return (out.amax(dim=others) <= 0).mean(dtype=torch.float32)

    if out.dim() == 3:
        return torch.minimum(frac(1), frac(2))
    return frac(1)
