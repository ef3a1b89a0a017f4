"""A GAN whose generator minimises the original minimax objective log(1 - D(G(z))): while D rejects the
early samples confidently, that loss saturates and the generator's gradient vanishes.

Source: depthfirstlearning/depthfirstlearning.com issue #22, "Vanishing gradients of GANs?"
https://github.com/depthfirstlearning/depthfirstlearning.com/issues/22
The issue works through why the saturating generator loss log(1 - D(G(z))) gives vanishing gradients
"when G is not (yet) able to generate good fakes and D can easily identify them as fake (x = 0 or close to
0)", plotting the gradients of both losses during training ("higher gradient means" for the
non-saturating one); the remedy from Goodfellow et al. (2014) is to maximise log D(G(z)) instead. The
program trains an MLP GAN on the 8-Gaussian ring with a discriminator that gets ahead early (5 D steps per
G step, as WGAN-style loops do), Adam(1e-3, betas=(0.5, 0.999)), batch 64, 500 G steps; the bug uses the
saturating generator loss, the fix the non-saturating one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...harness import case
from ._common import gen, ring, ring_scores
from .gh_cyclegan_910_discriminator_too_strong import mlp


@case(
    name="saturating-minimax-generator-loss",
    source="https://github.com/depthfirstlearning/depthfirstlearning.com/issues/22",
    title="generator minimising log(1 - D(G(z))) against a confident D: its gradient vanishes",
    expect="gan-g-vanishing",
    verify=lambda bug, fixed: fixed["quality"] > bug["quality"] + 0.15 and fixed["modes"] > bug["modes"],
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(22)
    G, D = mlp([16, 64, 64, 2]), mlp([2, 64, 64, 1])
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with nb.watch_gan(D, G, opt_d, opt_g):
        for _step in range(500):
            for _k in range(5):
                opt_d.zero_grad()
                fake = G(torch.randn(64, 16)).detach()
                d_loss = F.softplus(-D(ring(64, g))).mean() + F.softplus(D(fake)).mean()
                d_loss.backward()
                opt_d.step()
            opt_g.zero_grad()
            logits = D(G(torch.randn(64, 16)))
            g_loss = -F.softplus(logits).mean() if bug else F.softplus(-logits).mean()  # log(1 - D) vs -log D
            g_loss.backward()
            opt_g.step()
    with torch.no_grad():
        return ring_scores(G(torch.randn(512, 16, generator=gen(1))))
