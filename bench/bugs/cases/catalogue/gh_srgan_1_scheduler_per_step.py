"""SRGAN-PyTorch's training loop: StepLR(step_size=epochs // 2, gamma=0.1) stepped at every training step.

Source: Lornatang/SRGAN-PyTorch issue #1, "Learning rate scheduler is working incorrect"
https://github.com/Lornatang/SRGAN-PyTorch/issues/1
Reported: "they are called at each training step which means that learning rate is quickly becoming
zero after a few training steps. The SRGAN does not seem to train. But when I put schedulerD.step() and
schedulerG.step() after the epoch end, it started showing nice results." The maintainer fixed it.
Scaled down: the generator's pixel-loss (MSE) training of a small residual upsampler that maps 4x4
digits to 8x8, Adam(lr=1e-4) and the repo's StepLR(step_size=epochs // 2, gamma=0.1), 4 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class Upsampler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.PReLU())
        self.trunk = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.PReLU(), nn.Conv2d(32, 32, 3, padding=1)
        )
        self.upsampling = nn.Sequential(nn.Conv2d(32, 128, 3, padding=1), nn.PixelShuffle(2), nn.PReLU())
        self.conv_block3 = nn.Conv2d(32, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv_block1(x)
        out = out1 + self.trunk(out1)
        return self.conv_block3(self.upsampling(out))


@case(
    name="steplr-stepped-per-step-srgan",
    source="https://github.com/Lornatang/SRGAN-PyTorch/issues/1",
    title="super-resolution generator whose StepLR(epochs // 2, 0.1) is stepped every batch",
    expect=("lr-too-low", "lr-schedule-collapse"),
    verify=lambda bug, fixed: bug["final_lr"] < 1e-30 and bug["val_mse"] > 1.5 * fixed["val_mse"],
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (hr_t, _), (hr_v, _) = split(*digits_images())
    lr_t, lr_v = F.avg_pool2d(hr_t, 2), F.avg_pool2d(hr_v, 2)
    epochs = 4
    model = Upsampler()
    pixel_criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=epochs // 2, gamma=0.1)
    with nb.watch(model, optimizer):
        for _epoch in range(epochs):
            model.train()
            for lr_img, hr_img in loader(lr_t, hr_t, batch_size=16):
                optimizer.zero_grad()
                loss = pixel_criterion(model(lr_img), hr_img)
                loss.backward()
                optimizer.step()
                if bug:
                    scheduler.step()
            if not bug:
                scheduler.step()
    model.eval()
    with torch.no_grad():
        val_mse = pixel_criterion(model(lr_v), hr_v).item()
    return {"val_mse": val_mse, "final_lr": optimizer.param_groups[0]["lr"]}
