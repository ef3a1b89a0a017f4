"""Healthy: a warm-up + cosine learning-rate schedule expressed in optimizer steps and stepped every batch.

Source: crowsonkb/k-diffusion issue #50, "Learning rate scheduler broken"
(https://github.com/crowsonkb/k-diffusion/issues/50): asked why `sched.step()` is called every batch, the author
answers that the scheduler "is being used in the per step mode rather than per epoch, which means the warmup and
decay are expressed in terms of numbers of steps rather than numbers of epochs". A per-step schedule by design,
ending near zero: nbdebug must stay silent.
Data: the digits; a small convolutional noise-prediction model (MSE on the added noise), AdamW(lr=2e-4), a
LambdaLR with 30 warm-up steps then cosine decay to 0 over the run, batch 32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images
from ...harness import case


@case(
    name="rw-healthy-warmup-cosine-per-step",
    source="https://github.com/crowsonkb/k-diffusion/issues/50",
    title="denoiser with a warm-up + cosine LambdaLR defined in steps and stepped every batch, by design",
    healthy=True,
    verify=lambda m: m["loss_drop"] > 0.3 and m["final_lr"] < 1e-6,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images()
    model = nn.Sequential(
        nn.Conv2d(2, 32, 3, 1, 1), nn.SiLU(), nn.Conv2d(32, 32, 3, 1, 1), nn.SiLU(), nn.Conv2d(32, 1, 3, 1, 1)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    total, warmup = 3 * (len(x) // 32), 30

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    losses = []
    with nb.watch(model, opt):
        for _epoch in range(3):
            perm = torch.randperm(len(x))
            for i in range(0, len(x) - 31, 32):
                reals = x[perm[i : i + 32]]
                sigma = torch.rand(32, 1, 1, 1) * 1.5 + 0.1
                noise = torch.randn_like(reals)
                noised = reals + sigma * noise
                pred = model(torch.cat([noised, sigma.expand_as(noised)], 1))
                loss = F.mse_loss(pred, noise)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    return {"loss_drop": (first - last) / first, "final_lr": opt.param_groups[0]["lr"], "loss": last}
