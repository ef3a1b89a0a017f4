"""A mask-based enhancer trained with an intelligibility (STOI-style) loss: sqrt of a zero norm on padding.

Source: mpariente/pytorch_stoi issue #7, "NaN when back-propagation"
https://github.com/mpariente/pytorch_stoi/issues/7
Reported: "The gradients will become NaN sometimes, and I fixed this by adding an +EPS in line 127 and
line 128. I think the sqrt of 0 might lead to a NaN problem." The maintainer asked for the PR, which was
merged. The loss below is the core of the STOI loss: per 30-frame segment and band, the correlation of
mean-removed clean and estimated envelopes, each divided by its norm. Utterances in a batch are
zero-padded to the same length, so a padded segment of the estimate (mask * zeros) has norm 0.
Scaled down: 15 band envelopes, a per-frame MLP predicting a sigmoid mask, Adam 1e-3, synthetic
speech-like envelopes with additive noise.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen

EPS = 1e-8
N_FRAME = 30


def stoi_loss(est: torch.Tensor, clean: torch.Tensor, eps: float) -> torch.Tensor:
    """est, clean: (batch, bands, frames); frames a multiple of N_FRAME."""
    b, k, t = est.shape
    x = clean.reshape(b, k, t // N_FRAME, N_FRAME)
    y = est.reshape(b, k, t // N_FRAME, N_FRAME)
    x = x - x.mean(-1, keepdim=True)
    y = y - y.mean(-1, keepdim=True)
    x = x / (torch.norm(x, dim=-1, keepdim=True) + eps)
    y = y / (torch.norm(y, dim=-1, keepdim=True) + eps)
    return 1 - (x * y).sum(-1).mean()


def batch(g: torch.Generator, n: int = 16, bands: int = 15, frames: int = 150) -> tuple[torch.Tensor, ...]:
    t = torch.arange(frames, dtype=torch.float32)
    phase = torch.rand(n, bands, 1, generator=g) * 6.28
    rate = 0.05 + 0.3 * torch.rand(n, 1, 1, generator=g)
    clean = 1 + torch.sin(rate * t + phase) + 0.3 * torch.rand(n, bands, frames, generator=g)
    noisy = clean + 0.8 * torch.rand(n, bands, frames, generator=g)
    lengths = torch.randint(2, frames // N_FRAME + 1, (n,), generator=g) * N_FRAME
    pad = t[None, None, :] >= lengths[:, None, None]
    return noisy.masked_fill(pad, 0.0), clean.masked_fill(pad, 0.0)


class MaskNet(nn.Module):
    def __init__(self, bands: int = 15) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(bands, 64), nn.ReLU(), nn.Linear(64, bands), nn.Sigmoid())

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        mask = self.net(noisy.transpose(1, 2)).transpose(1, 2)
        return mask * noisy


@case(
    name="stoi-loss-sqrt-of-zero-padding",
    source="https://github.com/mpariente/pytorch_stoi/issues/7",
    title="mask enhancer trained with a STOI-style loss: the norm of a zero-padded segment is 0, NaN grads",
    expect="nonfinite",
    verify=lambda bug, fixed: (
        bug["nonfinite_params"] > 0
        and fixed["nonfinite_params"] == 0
        and fixed["last_loss"] < fixed["first_loss"]
    ),
    category="numerics",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(7)
    model = MaskNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    with nb.watch(model, optimizer):
        for _step in range(40):
            noisy, clean = batch(g)
            optimizer.zero_grad()
            loss = stoi_loss(model(noisy), clean, eps=0.0 if bug else EPS)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    bad = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
    return {"nonfinite_params": float(bad), "first_loss": losses[0], "last_loss": losses[-1]}
