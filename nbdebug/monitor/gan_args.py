"""The arguments `watch_gan` / `GanWatch` accept, checked before anything is hooked: each mistake named.
Optimizers that step the wrong network are the program's bug, reported as findings (`gan_wiring.py`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError, describe


def validate_gan_args(
    D: Any,
    G: Any,
    opt_d: Any,
    opt_g: Any,
    every: int,
    samples_every: int,
    noise: Any,
    n_samples: int,
    real: Any,
) -> None:
    for what, m in (("discriminator", D), ("generator", G)):
        if not isinstance(m, nn.Module):
            raise NbdebugError(f"watch_gan() needs an nn.Module as {what}, got {describe(m)}")
    if D is G:
        raise NbdebugError("discriminator and generator are the same module; pass D first, then G")
    for what, opt in (("d_optimizer", opt_d), ("g_optimizer", opt_g)):
        if not isinstance(opt, torch.optim.Optimizer):
            raise NbdebugError(f"{what} must be a torch.optim.Optimizer, got {describe(opt)}")
    # an optimizer stepping the other network is a bug of the program, not of the call: a finding
    # (gan_wiring.py), except the two optimizers passed in the wrong order, which it raises
    for what, v in (("every", every), ("samples_every", samples_every), ("n_samples", n_samples)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise NbdebugError(f"{what} must be a positive integer, got {v!r}")
    if noise is not None and not (isinstance(noise, (torch.Tensor, tuple)) or callable(noise)):
        raise NbdebugError(
            f"noise must be a tensor (the fixed noise batch), a tuple of G's arguments or a function n -> noise, "
            f"got {describe(noise)}"
        )
    if isinstance(noise, torch.Tensor) and (noise.dim() < 1 or noise.shape[0] < 1):
        raise NbdebugError(
            f"noise must be a batch with the examples along dim 0, got shape {tuple(noise.shape)}"
        )
    if real is not None and (not isinstance(real, torch.Tensor) or real.dim() < 1 or real.shape[0] < 2):
        raise NbdebugError(f"real must be a tensor of at least 2 real examples (dim 0), got {describe(real)}")
