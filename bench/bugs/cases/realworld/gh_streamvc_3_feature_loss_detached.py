"""A HiFi-GAN style generator whose feature-matching loss detaches the whole |fake - real| difference.

Source: yuval-reshef/StreamVC issue #3, "Zero Gradient from Feature Loss"
(https://github.com/yuval-reshef/StreamVC/issues/3): `FeatureLoss.forward` summed
`masked_mean_from_ratios(torch.abs(fake[i][j] - real[i][j]).detach(), mask_ratio)`, so the feature loss, added to
the generator's loss, gives the generator no gradient at all: "we should perform detach only on `real[i][j]`, not
on the difference between real and fake". The issue was closed with that change.
Data: synthetic 1-D signals (a clean two-tone target and a distorted, noisy input) instead of speech; a small
1-D conv generator and a conv discriminator returning its intermediate feature maps; generator loss =
least-squares adversarial term + 100 * feature loss (HiFi-GAN's weighting), Adam(lr=2e-4, betas=(0.8, 0.99)).
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen


def signals(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    t = torch.linspace(0, 1, length)
    f = torch.randint(2, 9, (n, 2), generator=g).float()
    target = 0.6 * torch.sin(6.2832 * f[:, :1] * t) + 0.3 * torch.sin(6.2832 * f[:, 1:] * t)
    source = torch.tanh(2.5 * target) + 0.2 * torch.randn(n, length, generator=g)  # distorted, noisy
    return source[:, None], target[:, None]


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(1, 32, 7, padding=3), nn.LeakyReLU(0.1), nn.Conv1d(32, 32, 7, padding=3), nn.LeakyReLU(0.1),
            nn.Conv1d(32, 1, 7, padding=3), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv1d(1, 16, 15, 1, 7), nn.Conv1d(16, 32, 11, 4, 5), nn.Conv1d(32, 32, 11, 4, 5)]
        )
        self.post = nn.Conv1d(32, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        fmap = []
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.1)
            fmap.append(x)
        fmap.append(self.post(x))
        return fmap  # features..., score


def feature_loss(real: list[torch.Tensor], fake: list[torch.Tensor], bug: bool) -> torch.Tensor:
    loss = torch.tensor(0.0)
    for j in range(len(fake) - 1):
        diff = torch.abs(fake[j] - real[j]).detach() if bug else torch.abs(fake[j] - real[j].detach())
        loss = loss + diff.mean()
    return loss


@case(
    name="rw-loss-term-detached-feature-matching",
    source="https://github.com/yuval-reshef/StreamVC/issues/3",
    title="GAN generator loss adds a feature-matching term computed on .detach()ed differences: no gradient",
    expect="loss-term-detached",
    verify=lambda bug, fixed: (
        fixed["val_l1"] < bug["val_l1"] * 0.8 and fixed["feat_drop"] > bug["feat_drop"] + 0.1
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    source, target = signals(640, 64, seed=3)
    G, D = Generator(), Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.8, 0.99))
    feats = []
    with nb.watch_gan(D, G, opt_d, opt_g, noise=source[:64]):
        for _epoch in range(6):
            perm = torch.randperm(576)
            for i in range(0, 576, 32):
                x, y = source[perm[i : i + 32]], target[perm[i : i + 32]]
                fake = G(x)
                opt_d.zero_grad()
                d_real, d_fake = D(y)[-1], D(fake.detach())[-1]
                loss_d = ((d_real - 1) ** 2).mean() + (d_fake**2).mean()
                loss_d.backward()
                opt_d.step()
                opt_g.zero_grad()
                fmap_real, fmap_fake = D(y), D(fake)
                loss_adv = ((fmap_fake[-1] - 1) ** 2).mean()
                loss_feat = feature_loss(fmap_real, fmap_fake, bug)
                loss_g = loss_adv + 100 * loss_feat
                loss_g.backward()
                opt_g.step()
                feats.append(loss_feat.item())
    with torch.no_grad():
        val_l1 = (G(source[576:]) - target[576:]).abs().mean().item()
    first, last = sum(feats[:10]) / 10, sum(feats[-10:]) / 10
    return {"val_l1": val_l1, "feat_drop": (first - last) / first, "loss_feat": last}
