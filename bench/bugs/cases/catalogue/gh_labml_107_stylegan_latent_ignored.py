"""A StyleGAN-style generator whose synthesis network never receives the mapped latent w: every z gives
the same sample from the first step on.

Source: labmlai/annotated_deep_learning_paper_implementations issue #107, "[BUG] StyleGAN2: latent vector
is ignored" https://github.com/labmlai/annotated_deep_learning_paper_implementations/issues/107
Reported: "The implementation of StyleGAN2 does not learn a mapping of the latent vector `z`. The vector
`z` is completely ignored, and a variety of generated images is provided by `noise`" (images with a
random z and fixed noise are all the same). Scaled down without the per-pixel noise (so nothing else
varies): a mapping MLP z -> w, a synthesis stack that starts from a learned constant and should modulate
each layer by an affine of w (the fix), non-saturating logistic GAN loss, Adam(lr=2e-3,
betas=(0.5, 0.999)), the 8-Gaussian ring, batch 64, 600 steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen, ring, ring_scores


class Generator(nn.Module):
    def __init__(self, z_dim: int = 16, w_dim: int = 32, uses_w: bool = True) -> None:
        super().__init__()
        self.mapping = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
        self.const = nn.Parameter(torch.randn(1, 64))
        self.style1, self.style2 = nn.Linear(w_dim, 64), nn.Linear(w_dim, 64)
        self.layer1, self.layer2 = nn.Linear(64, 64), nn.Linear(64, 64)
        self.to_out = nn.Linear(64, 2)
        self.uses_w = uses_w

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.mapping(z)
        x = self.const.expand(len(z), -1)
        s1 = 1 + self.style1(w) if self.uses_w else torch.ones_like(x)
        x = F.leaky_relu(self.layer1(x * s1), 0.2)
        s2 = 1 + self.style2(w) if self.uses_w else torch.ones_like(x)
        x = F.leaky_relu(self.layer2(x * s2), 0.2)
        return self.to_out(x)


@case(
    name="stylegan-latent-ignored-same-sample",
    source="https://github.com/labmlai/annotated_deep_learning_paper_implementations/issues/107",
    title="StyleGAN-like generator whose synthesis ignores w: the same sample for every z from step 1",
    expect="gan-mode-collapse",
    verify=lambda bug, fixed: bug["spread"] < 1e-3 and fixed["spread"] > 0.1,
    quick=True,
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(107)
    G = Generator(uses_w=not bug)
    D = nn.Sequential(
        nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1)
    )
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    with nb.watch_gan(D, G, opt_d, opt_g):
        for _step in range(600):
            real = ring(64, g)
            opt_d.zero_grad()
            fake = G(torch.randn(64, 16))
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = F.softplus(-D(fake)).mean()
            g_loss.backward()
            opt_g.step()
    with torch.no_grad():
        return ring_scores(G(torch.randn(512, 16, generator=gen(1))))
