"""DCGAN Tutorial: Generator of ConvTranspose2d-BatchNorm-ReLU blocks ending in Tanh, Discriminator of
Conv2d-BatchNorm-LeakyReLU(0.2) blocks ending in Sigmoid, weights_init N(0, 0.02), BCELoss, Adam lr=0.0002
betas (0.5, 0.999) for each network; per batch: netD.zero_grad(), D on real (label 1), D on
fake.detach() (label 0), optimizerD.step(); netG.zero_grad(), D on fake with label 1, optimizerG.step().

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/dcgan_faces_tutorial.py
The tutorial reports Loss_D and Loss_G oscillating against each other (that is how a GAN trains), D(x)
near 0.5-0.8 and D(G(z)) rising from ~0 as the generated faces improve.
Scaled: 16x16 digits in [-1, 1] instead of 64x64 CelebA faces, so three (de)convolution blocks instead of
five, ngf = ndf = 16 instead of 64; batch 128, 15 epochs of 11 batches.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...data import loader, split
from ...harness import case
from ._common import resized_digits

nz, ngf, ndf, nc = 100, 16, 16, 1


def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


@case(
    name="healthy-tut-dcgan-bce",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/dcgan_faces_tutorial.py",
    title="DCGAN with BCELoss, Adam(2e-4, beta1 0.5) for D and G, fake.detach() in D's step",
    healthy=True,
    verify=lambda m: m["mean_image_err_end"] < 0.5 * m["mean_image_err_start"] and m["fake_std"] > 0.3,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), _ = split(*resized_digits(16))
    dataloader = loader(xt, yt, batch_size=128, shuffle=True)
    netG, netD = Generator(), Discriminator()
    netG.apply(weights_init)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(64, nz, 1, 1)
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    real_mean = xt.mean(0)
    with torch.no_grad():
        err_start = (netG(fixed_noise).mean(0) - real_mean).abs().mean().item()
    with nb.watch_gan(netD, netG, optimizerD, optimizerG):
        for _epoch in range(15):
            for data in dataloader:
                netD.zero_grad()
                real_cpu = data[0]
                b_size = real_cpu.size(0)
                label = torch.full((b_size,), real_label, dtype=torch.float)
                output = netD(real_cpu).view(-1)
                errD_real = criterion(output, label)
                errD_real.backward()
                noise = torch.randn(b_size, nz, 1, 1)
                fake = netG(noise)
                label.fill_(fake_label)
                output = netD(fake.detach()).view(-1)
                errD_fake = criterion(output, label)
                errD_fake.backward()
                optimizerD.step()
                netG.zero_grad()
                label.fill_(real_label)
                output = netD(fake).view(-1)
                errG = criterion(output, label)
                errG.backward()
                optimizerG.step()
    with torch.no_grad():
        fake = netG(fixed_noise)
        err_end = (fake.mean(0) - real_mean).abs().mean().item()
    return {
        "mean_image_err_start": err_start,
        "mean_image_err_end": err_end,
        "fake_std": fake.std().item(),
        "errD": (errD_real + errD_fake).item(),
        "errG": errG.item(),
    }
