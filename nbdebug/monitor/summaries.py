"""Reducing one tensor to a few numbers the monitor can keep: a deterministic subsample, a small histogram,
the fraction of dead ReLU units. Nothing here keeps a reference to the tensor."""

from __future__ import annotations

import torch

SUBSAMPLE = 16384  # elements kept (by a fixed stride, no RNG) for histograms, std and fractions


def subsample(t: torch.Tensor, n: int = SUBSAMPLE) -> torch.Tensor:
    """A deterministic strided view of at most ~n elements: distribution summaries (histograms, std,
    fractions) of a 1M-element activation are the same to a few tenths of a percent, 50x cheaper."""
    flat = t.detach().reshape(-1)
    step = max(flat.numel() // n, 1)
    return flat[::step].float()


def histogram(t: torch.Tensor, bins: int) -> tuple[float, float, list[int]]:
    """(low, high, counts) of the finite values of a (subsampled) tensor: small enough to keep."""
    flat = t.detach().reshape(-1).float()
    finite = flat[torch.isfinite(flat)]
    if finite.numel() == 0:
        return 0.0, 0.0, [0] * bins
    lo, hi = (float(v) for v in torch.aminmax(finite))
    if hi <= lo:
        hi = lo + 1e-12
    counts = torch.histc(finite, bins=bins, min=lo, max=hi)
    return lo, hi, [int(c) for c in counts.tolist()]


def unit_dead_fraction(out: torch.Tensor) -> float:
    """Fraction of units (channels / features) of a ReLU output that are zero for every example.

    One pass: a unit is dead when its maximum over the batch (and positions) is 0, since a ReLU's
    output is >= 0. Units are dim 1 in PyTorch's channel-first layouts; for 3-D outputs (N, L, F) or
    (N, C, L) the smaller of the two readings is kept, so an ambiguous layout never inflates the count.
    """
    if out.dim() < 2:
        return float(out.max() <= 0)

    def frac(dim: int) -> torch.Tensor:
        others = tuple(d for d in range(out.dim()) if d != dim)
        return (out.amax(dim=others) <= 0).float().mean()

    if out.dim() == 3:
        return float(torch.minimum(frac(1), frac(2)))
    return float(frac(1))
