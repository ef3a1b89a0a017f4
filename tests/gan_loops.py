"""Tiny real GANs for the watch_gan tests: a 2-D Gaussian mixture and 8x8 digits, CPU, seconds each.

`train` is an ordinary user GAN loop (the PyTorch DCGAN example's order: D on real and detached fake,
then G with the non-saturating loss) with switches for the bugs the tests plant.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_CACHE: dict[str, torch.Tensor] = {}


def mixture(
    n: int = 1024, modes: int = 8, radius: float = 2.0, std: float = 0.05, seed: int = 0
) -> torch.Tensor:
    """`n` points of `modes` Gaussians evenly spaced on a ring: the classic mode-collapse benchmark."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * k.float() / modes
    centres = torch.stack([angle.cos(), angle.sin()], 1) * radius
    return centres + std * torch.randn(n, 2, generator=g)


def digits() -> torch.Tensor:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) in [-1, 1] (pixels 0..16), what a tanh G produces."""
    if "digits" not in _CACHE:
        from sklearn.datasets import load_digits

        x = torch.tensor(load_digits().data, dtype=torch.float32)
        _CACHE["digits"] = (x / 8 - 1).reshape(-1, 1, 8, 8)
    return _CACHE["digits"]


def mlp_g(nz: int = 8, out: int = 2, hidden: int = 64, tanh: bool = False) -> nn.Module:
    layers = [nn.Linear(nz, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)]
    return nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))


def mlp_d(n_in: int = 2, hidden: int = 64, sigmoid: bool = False) -> nn.Module:
    layers = [nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(hidden, 1), *([nn.Sigmoid()] if sigmoid else []))


def dcgan_g(nz: int = 16) -> nn.Module:
    """DCGAN-style generator for 8x8 images: project, then two stride-2 transposed convolutions."""
    return nn.Sequential(
        nn.Linear(nz, 64 * 2 * 2),
        nn.Unflatten(1, (64, 2, 2)),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, 2, 1),
        nn.Tanh(),
    )


def dcgan_d(sigmoid: bool = False) -> nn.Module:
    """DCGAN-style discriminator for 8x8 images: two stride-2 convolutions with LeakyReLU."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1),
        nn.BatchNorm2d(64),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(64 * 2 * 2, 1),
        *([nn.Sigmoid()] if sigmoid else []),
    )


def adam(model: nn.Module, lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.999))


def batches(data: torch.Tensor, batch_size: int, steps: int, seed: int = 0):
    """`steps` shuffled minibatches of `data` (epochs repeat), from a private generator."""
    g = torch.Generator().manual_seed(seed)
    done = 0
    while done < steps:
        for idx in torch.randperm(len(data), generator=g).split(batch_size):
            if len(idx) < batch_size or done >= steps:
                continue
            yield data[idx]
            done += 1


def train(
    D: nn.Module,
    G: nn.Module,
    opt_d: torch.optim.Optimizer,
    opt_g: torch.optim.Optimizer,
    data: torch.Tensor,
    steps: int = 200,
    nz: int = 8,
    batch_size: int = 64,
    zero_g: bool = True,
    noise_once: bool = False,
    saturating: bool = False,
    soft_labels: bool = False,
    probabilities: bool = False,
) -> None:
    """One D step (real + detached fake) then one G step per batch, like the PyTorch DCGAN example.

    Bugs: `zero_g=False` never zeroes G's optimizer (the classic missing optG.zero_grad()); `noise_once` feeds G
    the same noise vector for the whole batch; `saturating` trains G to maximise D's loss on fakes
    (log(1 - D(G(z))), which vanishes when D wins); `probabilities`: D ends in a Sigmoid and the loss
    is BCELoss. `soft_labels`: real targets in [0.7, 1.2], fake in [0, 0.3] (ganhacks).
    """
    bce = nn.BCELoss() if probabilities else nn.BCEWithLogitsLoss()
    z_once = torch.randn(1, nz)
    for real in batches(data, batch_size, steps):
        b = real.shape[0]
        z = z_once.expand(b, nz) if noise_once else torch.randn(b, nz)
        ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
        if soft_labels:
            ones, zeros = 0.7 + 0.5 * torch.rand(b, 1), 0.3 * torch.rand(b, 1)
        opt_d.zero_grad()
        fake = G(z)
        loss_d = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        if zero_g:
            opt_g.zero_grad()
        out = D(fake)
        loss_g = -bce(out, torch.zeros(b, 1)) if saturating else bce(out, torch.ones(b, 1))
        loss_g.backward()
        opt_g.step()
