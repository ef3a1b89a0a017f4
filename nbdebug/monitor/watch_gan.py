"""`nbdebug.watch_gan(D, G, opt_d, opt_g)`: check the arguments, build the `GanWatch`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .gan import GanWatch


def watch_gan(
    discriminator: nn.Module,
    generator: nn.Module,
    d_optimizer: torch.optim.Optimizer,
    g_optimizer: torch.optim.Optimizer,
    *,
    every: int = 10,
    samples_every: int = 25,
    noise: torch.Tensor | Callable[[int], Any] | None = None,
    n_samples: int = 64,
    real: torch.Tensor | None = None,
    seed: int = 0,
    on_update: Callable[[GanWatch], None] | None = None,
    update_interval: float = 0.5,
    max_frames: int = 40,
    names: tuple[str, str, str, str] = ("D", "G", "d_optimizer", "g_optimizer"),
) -> GanWatch:
    """Watch a GAN loop you write yourself: `with nbdebug.watch_gan(D, G, opt_d, opt_g) as g: ...`.

    `every`: per-layer statistics (update/weight ratios) of each network on its first step and every
    `every`-th step. `samples_every`: every that many G steps, G's output on a fixed noise batch (kept
    in `frames`, the sample grid) and the diversity of G's training batch against the real batch's.
    `noise`: the fixed noise batch (a tensor, or a function n -> noise); by default `n_samples` draws
    shaped like G's first input, from a private generator seeded with `seed` (the user's RNG is not
    consumed). `real`: real examples for the diversity reference (default: the real batches D sees).
    `on_update(gan_watch)`: called during the run at most every `update_interval` s (the live panel).
    `names`: how findings name D, G and their optimizers (the magic passes the notebook's names).
    """
    return GanWatch(
        discriminator,
        generator,
        d_optimizer,
        g_optimizer,
        every=every,
        samples_every=samples_every,
        noise=noise,
        n_samples=n_samples,
        real=real,
        seed=seed,
        on_update=on_update,
        update_interval=update_interval,
        max_frames=max_frames,
        names=names,
    )
