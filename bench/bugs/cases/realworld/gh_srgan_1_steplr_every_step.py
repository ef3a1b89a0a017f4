"""SRGAN training whose StepLR schedulers (step_size = epochs // 2) are stepped at every training step.

Source: Lornatang/SRGAN-PyTorch issue #1, "Learning rate scheduler is working incorrect"
(https://github.com/Lornatang/SRGAN-PyTorch/issues/1): "learning rate scheduler is used in `train.py` with
parameters `step_size=epochs // 2` and `gamma=0.1` ... However, they are called at each training step which
means that learning rate is quickly becoming zero after a few training steps. The SRGAN does not seem to train.
But when I put `schedulerD.step()` and `schedulerG.step()` after the epoch end, it started showing nice
results." The author: "Yeah, I found it. I will fix it."
Data: 4x4 -> 8x8 super-resolution of the digits; a small SRResNet and conv discriminator; pixel MSE + 0.001 *
adversarial BCE; Adam(lr=1e-4) for both; 4 epochs, so step_size = 2.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...data import digits_images
from ...harness import case
from ._common import SRResNet, sr_discriminator


@case(
    name="rw-lr-schedule-steplr-every-step-srgan",
    source="https://github.com/Lornatang/SRGAN-PyTorch/issues/1",
    title="SRGAN: StepLR(step_size=epochs // 2, gamma=0.1) stepped every batch; LR ~0 after a few steps",
    expect="lr-schedule-collapse",
    first_effect=3,  # step_size=2: the LR first drops after the 2nd step
    verify=lambda bug, fixed: bug["final_lr"] < 1e-20 and fixed["psnr"] > bug["psnr"] + 2,
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    hr, _ = digits_images(normalize=False)
    hr = hr / 16.0
    lr_imgs = nn.functional.avg_pool2d(hr, 2)
    netG, netD = SRResNet(), sr_discriminator()
    mse, bce = nn.MSELoss(), nn.BCEWithLogitsLoss()
    optimizerG = optim.Adam(netG.parameters(), lr=1e-4)
    optimizerD = optim.Adam(netD.parameters(), lr=1e-4)
    epochs = 4
    schedulerG = optim.lr_scheduler.StepLR(optimizerG, step_size=epochs // 2, gamma=0.1)
    schedulerD = optim.lr_scheduler.StepLR(optimizerD, step_size=epochs // 2, gamma=0.1)
    with nb.watch_gan(netD, netG, optimizerD, optimizerG):
        for _epoch in range(epochs):
            perm = torch.randperm(1400)
            for i in range(0, 1400 - 31, 32):
                target, inputs = hr[perm[i : i + 32]], lr_imgs[perm[i : i + 32]]
                real, fake_lbl = torch.ones(32, 1), torch.zeros(32, 1)
                sr = netG(inputs)
                optimizerD.zero_grad()
                d_loss = bce(netD(target), real) + bce(netD(sr.detach()), fake_lbl)
                d_loss.backward()
                optimizerD.step()
                optimizerG.zero_grad()
                g_loss = mse(sr, target) + 0.001 * bce(netD(sr), real)
                g_loss.backward()
                optimizerG.step()
                if bug:
                    schedulerD.step()
                    schedulerG.step()
            if not bug:
                schedulerD.step()
                schedulerG.step()
    netG.eval()
    with torch.no_grad():
        sr = netG(lr_imgs[1400:])
        psnr = (10 * torch.log10(1 / ((sr.clamp(0, 1) - hr[1400:]) ** 2).mean())).item()
    return {"psnr": psnr, "final_lr": optimizerG.param_groups[0]["lr"], "g_loss": g_loss.item()}
