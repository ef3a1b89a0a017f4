"""DeepFill v2 inpainting GAN (WGAN trainer) whose discriminator optimizer is zeroed but never stepped.

Source: zhaoyuzhi/deepfillv2 issue #6, "Discriminator parameter not update?"
(https://github.com/zhaoyuzhi/deepfillv2/issues/6). In trainer.py's `WGAN_trainer`, the D phase runs
`optimizer_d.zero_grad()`, computes `loss_D = -mean(true_scalar) + mean(fake_scalar)` and `loss_D.backward()`,
but "you do not include optimizer.step"; the author: "you are right. I will add it" (commit "add
optimizer_d.step() in line 113"). The discriminator keeps its random initialisation for the whole run.
Data: the digits (8x8, in [-1, 1]) with random rectangular holes instead of ImageNet with free-form masks;
the two-stage generator, the patch discriminator on (image, mask), the losses (two masked L1 terms +
gan_param=0.01 * WGAN term; the perceptual VGG term is left out) and Adam lr_g=1e-4, lr_d=4e-4,
betas=(0.5, 0.999) follow the repository at that commit (batch size 32 instead of 1).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images
from ...harness import case
from ._common import gen, moved, snapshot


def block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.2))


class GatedGenerator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.coarse = nn.Sequential(block(2, 16), block(16, 16), nn.Conv2d(16, 1, 3, 1, 1), nn.Tanh())
        self.refine = nn.Sequential(block(2, 16), block(16, 16), nn.Conv2d(16, 1, 3, 1, 1), nn.Tanh())

    def forward(self, img: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first_out = self.coarse(torch.cat([img * (1 - mask), mask], 1))
        first_in = img * (1 - mask) + first_out * mask
        second_out = self.refine(torch.cat([first_in, mask], 1))
        return first_out, second_out


class PatchDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            block(2, 16), nn.Conv2d(16, 32, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 1, 3, 1, 1)
        )

    def forward(self, img: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([img, mask], 1))


def holes(n: int, seed: int) -> torch.Tensor:
    g = gen(seed)
    mask = torch.zeros(n, 1, 8, 8)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(3, 5, (2,), generator=g))
        t, left = (
            int(torch.randint(0, 8 - h + 1, (1,), generator=g)),
            int(torch.randint(0, 8 - w + 1, (1,), generator=g)),
        )
        mask[i, 0, t : t + h, left : left + w] = 1
    return mask


@case(
    name="rw-never-steps-inpainting-gan-discriminator",
    source="https://github.com/zhaoyuzhi/deepfillv2/issues/6",
    title="DeepFill v2 WGAN trainer: loss_D.backward() runs, optimizer_d.step() is missing",
    expect="optimizer-never-steps",
    verify=lambda bug, fixed: (
        bug["d_moved"] == 0.0 and fixed["d_moved"] > 1e-3 and fixed["critic_gap"] > bug["critic_gap"] + 0.1
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images(normalize=False)
    imgs = x / 8.0 - 1.0  # [0, 16] -> [-1, 1]
    masks = holes(len(imgs), seed=6)
    generator, discriminator = GatedGenerator(), PatchDiscriminator()
    L1Loss = nn.L1Loss()
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=4e-4, betas=(0.5, 0.999))
    before = snapshot(discriminator)
    gaps = []
    with nb.watch_gan(discriminator, generator, optimizer_d, optimizer_g, noise=(imgs[:64], masks[:64])):
        for _epoch in range(2):
            perm = torch.randperm(len(imgs))
            for i in range(0, len(imgs) - 31, 32):
                img, mask = imgs[perm[i : i + 32]], masks[perm[i : i + 32]]
                ### Train Discriminator
                optimizer_d.zero_grad()
                first_out, second_out = generator(img, mask)
                first_out_wholeimg = img * (1 - mask) + first_out * mask
                second_out_wholeimg = img * (1 - mask) + second_out * mask
                fake_scalar = discriminator(second_out_wholeimg.detach(), mask)
                true_scalar = discriminator(img, mask)
                loss_D = -torch.mean(true_scalar) + torch.mean(fake_scalar)
                loss_D.backward()
                if not bug:
                    optimizer_d.step()
                ### Train Generator
                optimizer_g.zero_grad()
                first_MaskL1Loss = L1Loss(first_out_wholeimg, img)
                second_MaskL1Loss = L1Loss(second_out_wholeimg, img)
                fake_scalar = discriminator(second_out_wholeimg, mask)
                GAN_Loss = -torch.mean(fake_scalar)
                loss = first_MaskL1Loss + second_MaskL1Loss + 0.01 * GAN_Loss
                loss.backward()
                optimizer_g.step()
                gaps.append(-loss_D.item())
    return {
        "d_moved": moved(before, discriminator),
        "critic_gap": sum(gaps[-20:]) / 20,  # mean(D(real)) - mean(D(fake)) late in training
        "l1": second_MaskL1Loss.item(),
    }
