"""What G produces, as `GanWatch` shows it: G run on a noise batch fixed at the start (the sample grid over
time) and the diversity of its training batch against the real batch's (mode collapse). Sampling never
changes the training: G's mode, BatchNorm buffers and the user's RNG are restored."""

from __future__ import annotations

import dataclasses
import math
from statistics import median
from typing import Any

import torch

from .._core.hooks import preserved
from .._core.tensors import first_tensor


@dataclasses.dataclass
class Frame:
    """G's output on the fixed noise batch after G step `step` (CPU float tensor)."""

    step: int
    samples: torch.Tensor
    diversity: float  # their mean pairwise distance / the real data's


def mean_pairwise_distance(x: torch.Tensor, max_n: int = 128) -> float:
    """Mean Euclidean distance between the (flattened) rows of `x`: the spread of a batch."""
    flat = x.detach().reshape(x.shape[0], -1).float()[:max_n]
    if flat.shape[0] < 2:
        return math.nan
    return float(torch.pdist(flat).mean())


class GanSamples:
    """Mixin of `GanWatch`: the fixed-noise sample grid and the diversity measurements."""

    def _measure(self, row: dict[str, Any], step: int) -> None:
        if self._last_real is not None and self.real_arg is None:
            d = mean_pairwise_distance(self._last_real)
            if math.isfinite(d):
                self._real_divs.append(d)
                self.real_diversity = median(self._real_divs[-20:])
                if self.real_samples is None:
                    self.real_samples = self._last_real[:256].cpu().float()
        ref = self.real_diversity
        if self._last_fake is not None and math.isfinite(ref) and ref > 0:
            row["diversity"] = mean_pairwise_distance(self._last_fake) / ref
        self._last_fake = self._last_real = None
        samples = self.sample()
        if samples is None:
            return
        div = mean_pairwise_distance(samples) / ref if math.isfinite(ref) and ref > 0 else math.nan
        row["sample_diversity"] = div
        self.frames.append(Frame(step, samples, div))
        self._new_frame = True
        if len(self.frames) > self.max_frames:  # keep the first and the latest, thin the middle
            del self.frames[1:-1:2]

    def _noise(self) -> Any:
        if self.fixed_noise is not None:
            return self.fixed_noise
        if callable(self.noise_arg):
            self.fixed_noise = self.noise_arg(self.n_samples)
            return self.fixed_noise
        if self._noise_spec is None:
            return None
        shape, dtype, device = self._noise_spec
        gen = torch.Generator(device=device).manual_seed(self.seed)  # private: the user's RNG is untouched
        self.fixed_noise = torch.randn(
            (self.n_samples, *shape[1:]), generator=gen, dtype=dtype, device=device
        )
        return self.fixed_noise

    def sample(self) -> torch.Tensor | None:
        """G's output on the fixed noise batch, now (CPU float). G's mode, BatchNorm buffers and the RNG
        are restored afterwards, so sampling never changes the training; None before G's first call."""
        if self.sampling_error is not None:
            return None
        z = self._noise()
        if z is None:
            return None
        self._own_call = True
        try:
            with preserved(self.generator), torch.no_grad():
                out = self.generator(*z) if isinstance(z, tuple) else self.generator(z)
        except Exception as e:  # e.g. a conditional G that also needs labels: say so once, keep training
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            self.sampling_error = (
                f"G(fixed noise {shape}) failed with {type(e).__name__}: {e}; pass noise= (a tensor, a tuple of "
                "G's arguments, or a function n -> noise) to watch_gan / --noise to %%nn_gan"
            )
            return None
        finally:
            self._own_call = False
        y = first_tensor(out)
        return y.detach().float().cpu() if isinstance(y, torch.Tensor) else None
