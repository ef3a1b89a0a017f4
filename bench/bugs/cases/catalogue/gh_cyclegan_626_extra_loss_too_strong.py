"""A GAN whose generator loss adds a new term weighted so heavily that the adversarial term no longer
matters: the discriminator wins outright (loss_D -> 0) while the generator chases the new term.

Source: junyanz/pytorch-CycleGAN-and-pix2pix issue #626, "Loss D goes to zero when adding a new loss to
generator" https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/626
Reported: "when I add a new loss to the cyclegan. The discriminator loss easy goes down to 0, the results
of the generator look terrible." Maintainer: "Maybe your newly added loss is too strong compared to
existing CycleGAN losses" and "Maybe reducing the weight for your new loss." Scaled down to the
8-Gaussian ring: the generator's loss is the GAN loss plus lambda times an added penalty (mean squared
norm of its output, a "keep it small" prior); lambda = 10 in the bug, 0.01 in the fix; BCE-with-logits GAN
loss, Adam(2e-3, betas=(0.5, 0.999)), batch 64, 800 steps.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen, ring, ring_scores
from .gh_cyclegan_910_discriminator_too_strong import mlp


@case(
    name="added-generator-loss-too-strong-d-wins",
    source="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/626",
    title="generator loss = GAN loss + 10 x a new penalty: the penalty dominates, D separates perfectly",
    expect="gan-d-collapse",
    verify=lambda bug, fixed: (
        bug["d_real"] > 0.9 and bug["d_fake"] < 0.1 and fixed["modes"] >= bug["modes"] + 3
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(626)
    G, D = mlp([16, 64, 64, 2]), mlp([2, 64, 64, 1])
    criterion = nn.BCEWithLogitsLoss()
    lambda_new = 10.0 if bug else 0.01
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
            loss_g = criterion(pred, torch.ones_like(pred)) + lambda_new * (fake**2).sum(1).mean()
            loss_g.backward()
            opt_g.step()
    with torch.no_grad():
        d_real = torch.sigmoid(D(ring(512, g))).mean().item()
        samples = G(torch.randn(512, 16, generator=gen(1)))
        d_fake = torch.sigmoid(D(samples)).mean().item()
    return {**ring_scores(samples), "d_real": d_real, "d_fake": d_fake}
