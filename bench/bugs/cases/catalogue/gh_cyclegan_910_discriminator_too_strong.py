"""A GAN whose discriminator has far more capacity than its generator: D's loss goes to zero, D(x) -> 1 and
D(G(z)) -> 0, and the generator's loss keeps growing.

Source: junyanz/pytorch-CycleGAN-and-pix2pix issue #910, "loss_D zero, loss_G incresing"
https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/910
Reported: "Loss_D is zero, loss_G is increasing ... The generated picture is very bad." Maintainer:
"Maybe you want to increase the capacity of your generator and/or decrease the capacity of the
discriminator" (--ngf / --ndf / --n_layers_D); the reporter: "I have solved my problem, loss_D, loss_G
is normal." Scaled down to the 8-Gaussian ring: the bug pairs a one-hidden-layer, 8-unit generator with a
4-layer, 256-unit discriminator; the fix uses a 64-unit, 2-hidden-layer generator and a 64-unit
discriminator; pix2pix's BCE (vanilla) GAN loss with logits, Adam(2e-4 scaled to 2e-3, betas=(0.5,
0.999)), batch 64, 800 steps.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen, ring, ring_scores


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


@case(
    name="discriminator-capacity-overwhelms-generator",
    source="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/910",
    title="GAN with an 8-unit generator against a 4x256 discriminator: loss_D -> 0, loss_G grows",
    expect="gan-d-collapse",
    verify=lambda bug, fixed: (
        bug["d_real"] > 0.85 and bug["d_fake"] < 0.1 and fixed["modes"] > bug["modes"] + 2
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(910)
    G = mlp([16, 8, 2]) if bug else mlp([16, 64, 64, 2])
    D = mlp([2, 256, 256, 256, 256, 1]) if bug else mlp([2, 64, 64, 1])
    criterion = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    with nb.watch_gan(D, G, opt_d, opt_g):
        for _step in range(800):
            real = ring(64, g)
            fake = G(torch.randn(64, 16))
            opt_d.zero_grad()
            pred_real, pred_fake = D(real), D(fake.detach())
            loss_d = 0.5 * (
                criterion(pred_real, torch.ones_like(pred_real))
                + criterion(pred_fake, torch.zeros_like(pred_fake))
            )
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            pred = D(fake)
            loss_g = criterion(pred, torch.ones_like(pred))
            loss_g.backward()
            opt_g.step()
    with torch.no_grad():
        d_real = torch.sigmoid(D(ring(512, g))).mean().item()
        samples = G(torch.randn(512, 16, generator=gen(1)))
        d_fake = torch.sigmoid(D(samples)).mean().item()
    return {**ring_scores(samples), "d_real": d_real, "d_fake": d_fake}
