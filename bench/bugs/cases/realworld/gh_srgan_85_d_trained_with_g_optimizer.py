"""SRGAN training where the discriminator phase steps the generator's optimizer.

Source: Lornatang/SRGAN-PyTorch issue #85, "Train Code" (https://github.com/Lornatang/SRGAN-PyTorch/issues/85):
"you specify 'g_optimizer' as discriminator optimizer and 'd_optimizer' is not used during training model";
the author: "You're right. It's a mistake." train_gan.py called `train(..., g_optimizer, g_optimizer, ...)`, so
inside `train` the D phase's `scaler.step(d_optimizer)` stepped the generator (with its g_loss gradients, which
are not zeroed in between) and the discriminator was never updated. Fix (commit "Update train_gan.py"): pass
`d_optimizer`.
Data: 4x4 -> 8x8 super-resolution of the digits; a small SRResNet (residual blocks + PixelShuffle) and a conv
discriminator; pixel MSE + 0.001 * adversarial BCE (the VGG content loss is left out); both Adam(lr=1e-4);
AMP's GradScaler kept (on the CPU, float32).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images
from ...harness import case
from ._common import SRResNet, moved, snapshot, sr_discriminator


@case(
    name="rw-wrong-network-srgan-d-phase-steps-g-optimizer",
    source="https://github.com/Lornatang/SRGAN-PyTorch/issues/85",
    title="SRGAN: train() receives g_optimizer twice, so the D phase steps G and never updates D",
    expect="optimizer-wrong-network",
    verify=lambda bug, fixed: (
        bug["d_moved"] == 0.0 and fixed["d_moved"] > 1e-3 and fixed["d_acc"] > bug["d_acc"] + 0.1
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    hr, _ = digits_images(normalize=False)
    hr = hr / 16.0
    lr_imgs = nn.functional.avg_pool2d(hr, 2)
    g_model, d_model = SRResNet(), sr_discriminator()
    pixel_criterion, adversarial_criterion = nn.MSELoss(), nn.BCEWithLogitsLoss()
    g_optimizer = torch.optim.Adam(g_model.parameters(), 1e-4, (0.9, 0.999))
    d_optimizer = torch.optim.Adam(d_model.parameters(), 1e-4, (0.9, 0.999))
    scaler = torch.amp.GradScaler("cpu")
    d_opt_passed = g_optimizer if bug else d_optimizer  # train(..., g_optimizer, g_optimizer, ...)
    before = snapshot(d_model)
    with nb.watch_gan(d_model, g_model, d_opt_passed, g_optimizer):
        for _epoch in range(2):
            perm = torch.randperm(len(hr))
            for i in range(0, len(hr) - 15, 16):
                gt, lr = hr[perm[i : i + 16]], lr_imgs[perm[i : i + 16]]
                real_label = torch.full((16, 1), 1.0)
                fake_label = torch.full((16, 1), 0.0)
                for d_parameters in d_model.parameters():
                    d_parameters.requires_grad = False
                g_model.zero_grad(set_to_none=True)
                sr = g_model(lr)
                pixel_loss = pixel_criterion(sr, gt)
                adversarial_loss = adversarial_criterion(d_model(sr), real_label)
                g_loss = 1.0 * pixel_loss + 0.001 * adversarial_loss
                scaler.scale(g_loss).backward()
                scaler.step(g_optimizer)
                scaler.update()
                for d_parameters in d_model.parameters():
                    d_parameters.requires_grad = True
                d_model.zero_grad(set_to_none=True)
                gt_output = d_model(gt)
                d_loss_gt = adversarial_criterion(gt_output, real_label)
                scaler.scale(d_loss_gt).backward()
                sr_output = d_model(sr.detach().clone())
                d_loss_sr = adversarial_criterion(sr_output, fake_label)
                scaler.scale(d_loss_sr).backward()
                scaler.step(d_opt_passed)
                scaler.update()
    d_model.eval()
    with torch.no_grad():
        sr = g_model(lr_imgs)
        d_acc = ((d_model(hr) > 0).float().mean() + (d_model(sr) < 0).float().mean()).item() / 2
        psnr = (10 * torch.log10(1 / ((sr.clamp(0, 1) - hr) ** 2).mean())).item()
    return {"d_moved": moved(before, d_model), "d_acc": d_acc, "psnr": psnr}
