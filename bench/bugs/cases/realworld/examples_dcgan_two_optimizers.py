"""Healthy: pytorch/examples DCGAN, two networks with two optimizers and `fake.detach()` in the D step.

Source: pytorch/examples, dcgan/main.py (https://github.com/pytorch/examples/blob/main/dcgan/main.py).
`optimizerD = Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))`, `optimizerG` likewise on netG; D is
trained on real and on `netD(fake.detach())`, G on `netD(fake)` with real labels; BCELoss. The reference for
"two networks, two optimizers" and for a legitimate `.detach()` in the D step: nbdebug must stay silent.
Data: the digits (8x8, in [-1, 1]); the generator and discriminator are the DCGAN stacks scaled to 8x8
(ngf = ndf = 16, nz = 16), batch size 64.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...data import digits_images
from ...harness import case

nz, ngf, ndf = 16, 16, 16


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, 1, 3, 1, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 2, 1, 0, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input).view(-1, 1).squeeze(1)


def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


@case(
    name="rw-healthy-dcgan-two-optimizers",
    source="https://github.com/pytorch/examples/blob/main/dcgan/main.py",
    title="DCGAN: D and G each with their own Adam, fake.detach() in the D step",
    healthy=True,
    verify=lambda m: 0.05 < m["D_x"] < 0.98 and m["g_moved"] > 1e-3 and m["fake_std"] > 0.05,
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images(normalize=False)
    data = x / 8.0 - 1.0
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    g0 = [p.detach().clone() for p in netG.parameters()]
    criterion = nn.BCELoss()
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    with nb.watch_gan(netD, netG, optimizerD, optimizerG):
        for _epoch in range(5):
            perm = torch.randperm(len(data))
            for i in range(0, len(data) - 63, 64):
                real_cpu = data[perm[i : i + 64]]
                batch_size = real_cpu.size(0)
                netD.zero_grad()
                label = torch.full((batch_size,), real_label)
                output = netD(real_cpu)
                errD_real = criterion(output, label)
                errD_real.backward()
                D_x = output.mean().item()
                noise = torch.randn(batch_size, nz, 1, 1)
                fake = netG(noise)
                label.fill_(fake_label)
                output = netD(fake.detach())
                errD_fake = criterion(output, label)
                errD_fake.backward()
                optimizerD.step()
                netG.zero_grad()
                label.fill_(real_label)
                output = netD(fake)
                errG = criterion(output, label)
                errG.backward()
                optimizerG.step()
    g_moved = max(float((p.detach() - q).abs().max()) for p, q in zip(netG.parameters(), g0))
    return {
        "D_x": D_x,
        "errG": errG.item(),
        "g_moved": g_moved,
        "fake_std": fake.detach().std(0).mean().item(),
    }
