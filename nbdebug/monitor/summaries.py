"""Reducing one tensor to a few numbers the monitor can keep: a deterministic subsample, a small histogram,
the fraction of dead ReLU units. Nothing here keeps a reference to the tensor."""

from __future__ import annotations

import math

import torch

SUBSAMPLE = 16384  # elements kept (by a fixed stride, no RNG) for std and fractions
HIST_SAMPLE = 4096  # of those, binned into a histogram (30 bins)


def strided(t: torch.Tensor, n: int = SUBSAMPLE) -> torch.Tensor:
    """A deterministic strided view of at most ~n elements of `t`, flattened, as float32 (converted only
    when it is not): distribution summaries (std, fractions) of a 1M-element activation are the same to a
    few tenths of a percent, 50x cheaper. A view: reduce it at once; keep `subsample` instead."""
    # (each call below is a dispatch that costs more than its work on these sizes: one where one does)
    flat = t.detach() if t.requires_grad else t
    size = flat.numel()
    step = max(size // n, 1)
    if step > 1:
        if flat.is_contiguous():
            flat = flat.as_strided(((size + step - 1) // step,), (step,))
        else:
            flat = flat.reshape(-1)[::step]
    elif flat.dim() != 1:
        flat = flat.reshape(-1)
    return flat if flat.dtype == torch.float32 else flat.float()


def subsample(t: torch.Tensor, n: int = SUBSAMPLE) -> torch.Tensor:
    """`strided`, as a copy when it is a view of part of `t`: a view kept until the step's numbers are read
    would keep the whole activation alive, and the backward pass would then allocate fresh memory instead
    of reusing it (page faults that cost more than the statistics themselves)."""
    flat = strided(t, n)
    return flat.contiguous() if flat.numel() < t.numel() and flat.dtype == t.dtype else flat


def spread_sums(flat: torch.Tensor, total: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, sum of squares) of a 1-D float tensor's deviations from `total / count` (a mean taken
    already: of `flat` or of the tensor it samples), for `spread_std`. Three cheap dispatches where
    `Tensor.std` is one slow one (~4x on 16k values); centring on a mean keeps the formula exact to float32
    rounding even when the mean is far larger than the spread."""
    d = torch.sub(flat, total, alpha=1.0 / count)
    return d.sum(), torch.dot(d, d)


def spread_std(s1: float, s2: float, n: int) -> float:
    """The sample standard deviation (n - 1) of `n` values from their `spread_sums`; 0 for fewer than two."""
    if n < 2:
        return 0.0
    return math.sqrt(max((s2 - s1 * s1 / n) / (n - 1), 0.0))


def histogram(t: torch.Tensor, bins: int) -> tuple[float, float, list[int]]:
    """(low, high, counts) of the finite values of a (subsampled) tensor: small enough to keep. At most
    HIST_SAMPLE values are binned (30 bins need no more), and the finite-value mask is only built when
    the range is not finite (it cost more than the histogram itself)."""
    flat = subsample(t, HIST_SAMPLE)
    if flat.numel() == 0:
        return 0.0, 0.0, [0] * bins
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
    layer); on the CPU, where a scatter is slow, as the rows of one matrix (`_histc_rows`). Same bins as
    torch.histc either way: `bins` equal bins over [low, high], high included."""
    if not tensors:
        return []
    flats = [strided(t, HIST_SAMPLE) for t in tensors]  # views: both paths copy them into one tensor at once
    if flats[0].device.type == "cpu":  # no device to wait for: rows of one matrix, no scatter
        return _histc_rows(flats, bins)
    return segmented_histograms(flats, bins)


def _histc_rows(flats: list[torch.Tensor], bins: int) -> list[tuple[float, float, list[int]]]:
    """`histogram` of each 1-D tensor on the CPU, all at once: the tensors as the rows of one matrix (a short
    row padded with its own first value, taken back out of that value's bin), every row's range, bin indices
    and counts in a few calls over the whole matrix, and two reads. torch.histc costs ~16 ns a value plus a
    dispatch: one call per layer took 3.6 ms for a small BERT's 53 layers, this 0.9 ms. Same bins as
    torch.histc: `bins` equal bins over [low, high], high in the last."""
    out: list[tuple[float, float, list[int]] | None] = [None] * len(flats)
    rows = [i for i, f in enumerate(flats) if f.numel()]
    for i in range(len(flats)):
        if not flats[i].numel():
            out[i] = (0.0, 0.0, [0] * bins)
    if rows:
        n = max(flats[i].numel() for i in rows)
        pieces = []
        for i in rows:
            pieces.append(flats[i])
            if flats[i].numel() < n:
                pieces.append(flats[i][:1].expand(n - flats[i].numel()))
        m = torch.cat(pieces).view(len(rows), n)
        lo, hi = m.amin(1), m.amax(1)  # (NaN where a row has one)
        low, high = torch.stack([lo, hi]).tolist()
        finite = [j for j in range(len(rows)) if math.isfinite(low[j]) and math.isfinite(high[j])]
        for j in sorted(set(range(len(rows))) - set(finite)):  # rare: the finite values' own range
            out[rows[j]] = histogram(flats[rows[j]], bins)
        if finite:
            if len(finite) < len(rows):
                keep = torch.tensor(finite)
                m, lo, hi = m[keep], lo[keep], hi[keep]
            width = torch.where(hi > lo, hi - lo, 1e-12)
            index = (m - lo[:, None]).div_(width[:, None]).mul_(bins).floor_().clamp_(0, bins - 1)
            index += (torch.arange(len(finite), dtype=index.dtype) * bins)[:, None]  # row j: bins j*bins...
            index = index.long()
            counts = torch.bincount(index.view(-1), minlength=len(finite) * bins)
            pads = [n - flats[rows[j]].numel() for j in finite]
            if any(pads):
                counts.index_put_((index[:, 0],), -torch.tensor(pads), accumulate=True)
            for j, row in zip(finite, counts.view(len(finite), bins).tolist()):
                a, b = low[j], high[j]
                out[rows[j]] = (a, b if b > a else a + 1e-12, row)
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


def unit_maxima(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(`unit_dead_fraction(out)`, the sum of the unit maxima it took): a ReLU's output is >= 0 or NaN or
    +Inf, and a maximum keeps NaN and +Inf, so the sum is non-finite exactly when `out` has a non-finite
    value. One pass over a ReLU's output gives both (a separate `out.sum()` for the non-finite check cost as
    much again on every sampled step)."""
    if out.dim() < 2:
        top = out.max()
        return (top <= 0).float(), top.float()
    # the batch first: one pass over the output (amax over dims 0, 2, 3 at once read it ~1.8x slower), then
    # the small per-position maxima it leaves
    first = out.amax(0)
    top = first.amax(dim=tuple(range(1, first.dim()))) if first.dim() > 1 else first
    dead = (top <= 0).mean(dtype=torch.float32)
    if out.dim() == 3:  # (N, L, F) or (N, C, L): the smaller reading, as unit_dead_fraction (dim 1 is done)
        dead = torch.minimum(dead, (first.amax(0) <= 0).mean(dtype=torch.float32))
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
