"""A diffusion fine-tuning loop (accelerate style) that steps the LR scheduler but never the optimizer.

Source: tedlasai/learn2refocus issue #5, "Training script potential bug"
(https://github.com/tedlasai/learn2refocus/issues/5). In training/svd_runner.py the loop reads
`accelerator.backward(loss)`, `lr_scheduler.step()`, `optimizer.zero_grad()`: "there's a missing code ...
`optimizer.step()   # add this line, or the weight never gets updated`". The author: "Thank you! I have updated
the code."
Data: a small convolutional noise-prediction network on the digits stands in for the Stable Video Diffusion
UNet; the loop keeps the noise-prediction MSE, AdamW with a warm-up LR schedule stepped every batch, and the
backward / (missing) step / scheduler step / zero_grad order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images
from ...harness import case
from ._common import moved, snapshot


class Denoiser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.time = nn.Linear(1, 32)
        self.inp = nn.Conv2d(1, 32, 3, 1, 1)
        self.mid = nn.Sequential(nn.SiLU(), nn.Conv2d(32, 32, 3, 1, 1), nn.SiLU(), nn.Conv2d(32, 32, 3, 1, 1))
        self.out = nn.Conv2d(32, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.time(t[:, None])[:, :, None, None]
        return self.out(self.mid(h))


@case(
    name="rw-never-steps-diffusion-finetune",
    source="https://github.com/tedlasai/learn2refocus/issues/5",
    title="diffusion training loop: backward and lr_scheduler.step() run, optimizer.step() is missing",
    expect="optimizer-never-steps",
    verify=lambda bug, fixed: bug["moved"] == 0.0 and bug["loss_drop"] < 0.05 and fixed["loss_drop"] > 0.2,
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images()
    unet = Denoiser()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, weight_decay=1e-2)
    warmup = 20
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    alphas = torch.linspace(0.99, 0.05, 100)  # cumulative signal level per timestep
    before = snapshot(unet)
    losses = []
    with nb.watch(unet, optimizer):
        for _epoch in range(3):
            perm = torch.randperm(len(x))
            for i in range(0, len(x) - 31, 32):
                latents = x[perm[i : i + 32]]
                noise = torch.randn_like(latents)
                timesteps = torch.randint(0, 100, (latents.shape[0],))
                a = alphas[timesteps][:, None, None, None]
                noisy_latents = a.sqrt() * latents + (1 - a).sqrt() * noise
                model_pred = unet(noisy_latents, timesteps.float() / 100)
                loss = F.mse_loss(model_pred.float(), noise.float(), reduction="mean")
                loss.backward()  # accelerator.backward(loss)
                if not bug:
                    optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
                losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    return {"moved": moved(before, unet), "loss_drop": (first - last) / first, "loss": last}
