"""Healthy: pix2pix, whose discriminator step uses `fake.detach()` and whose generator loss is GAN + L1.

Source: junyanz/pytorch-CycleGAN-and-pix2pix, models/pix2pix_model.py, as explained in issue #388
(https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/388): "detach() stops the gradient.
fake.detach() will make sure that G does not get gradients" in `backward_D`, while `backward_G` computes
`criterionGAN(netD(fake_AB), True)` without detach plus `criterionL1(fake_B, real_B) * lambda_L1` (100). Adam
lr=0.0002, betas=(0.5, 0.999). The legitimate counterpart of the detached-loss-term bugs: nbdebug must stay
silent.
Data: blurred digits (A) to sharp digits (B), 8x8; a small conv generator and a PatchGAN discriminator on the
concatenated (A, B) pair, batch 32.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images
from ...harness import case


def generator() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(True), nn.Conv2d(32, 32, 3, 1, 1), nn.BatchNorm2d(32), nn.ReLU(True),
        nn.Conv2d(32, 1, 3, 1, 1), nn.Tanh(),
    )  # fmt: skip


def patch_discriminator() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 32, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(32, 64, 3, 1, 1), nn.BatchNorm2d(64),
        nn.LeakyReLU(0.2, True), nn.Conv2d(64, 1, 3, 1, 1),
    )  # fmt: skip


@case(
    name="rw-healthy-pix2pix-detach-in-d-step",
    source="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix/issues/388",
    title="pix2pix: D trained on fake.detach(), G on GAN + 100 * L1 without detach",
    healthy=True,
    verify=lambda m: m["val_l1"] < 0.8 * m["blur_l1"],
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images(normalize=False)
    real_B = x / 8.0 - 1.0
    real_A = nn.functional.avg_pool2d(real_B, 3, 1, 1, count_include_pad=False)  # blurred input
    netG, netD = generator(), patch_discriminator()
    criterionGAN, criterionL1 = nn.BCEWithLogitsLoss(), nn.L1Loss()
    optimizer_G = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    with nb.watch_gan(netD, netG, optimizer_D, optimizer_G):
        for _epoch in range(4):
            perm = torch.randperm(1400)
            for i in range(0, 1400 - 31, 32):
                a, b = real_A[perm[i : i + 32]], real_B[perm[i : i + 32]]
                fake_B = netG(a)
                # backward_D
                optimizer_D.zero_grad()
                pred_fake = netD(torch.cat((a, fake_B), 1).detach())
                loss_D_fake = criterionGAN(pred_fake, torch.zeros_like(pred_fake))
                pred_real = netD(torch.cat((a, b), 1))
                loss_D_real = criterionGAN(pred_real, torch.ones_like(pred_real))
                loss_D = (loss_D_fake + loss_D_real) * 0.5
                loss_D.backward()
                optimizer_D.step()
                # backward_G
                optimizer_G.zero_grad()
                pred_fake = netD(torch.cat((a, fake_B), 1))
                loss_G_GAN = criterionGAN(pred_fake, torch.ones_like(pred_fake))
                loss_G_L1 = criterionL1(fake_B, b) * 100.0
                loss_G = loss_G_GAN + loss_G_L1
                loss_G.backward()
                optimizer_G.step()
    netG.eval()
    with torch.no_grad():
        val_l1 = criterionL1(netG(real_A[1400:]), real_B[1400:]).item()
    return {"val_l1": val_l1, "blur_l1": criterionL1(real_A[1400:], real_B[1400:]).item()}
