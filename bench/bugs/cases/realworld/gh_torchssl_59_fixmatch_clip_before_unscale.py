"""FixMatch (TorchSSL) with AMP and `--clip` set: clip_grad_norm_ runs on the scaled gradients.

Source: TorchSSL/TorchSSL pull request #59, "fix bug in gradient clipping"
(https://github.com/TorchSSL/TorchSSL/pull/59): "In automatic mixed precision, we should unscale all gradients
before clip them." In models/fixmatch/fixmatch.py the AMP branch ran `scaler.scale(total_loss).backward()`,
then `if args.clip > 0: torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.clip)`, then
`scaler.step(self.optimizer)`; the fix inserts `scaler.unscale_(self.optimizer)` before the clipping.
With SGD, clipping the x65536 gradients to norm `clip` makes every update ~65536 times too small.
Data: the digits, 250 labelled and the rest unlabelled; a small CNN stands in for the WideResNet; weak / strong
augmentation are light / heavy noise with pixel dropout. Kept: supervised CE + lambda_u * confidence-masked
(p_cutoff 0.95) pseudo-label CE, SGD(lr=0.03, momentum=0.9, nesterov, weight_decay=5e-4), a warm-up cosine
schedule stepped every iteration, GradScaler, and `--clip 1.0`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images
from ...harness import case
from ._common import gen


def net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def weak(x: torch.Tensor) -> torch.Tensor:
    return x + 0.1 * torch.randn_like(x)


def strong(x: torch.Tensor) -> torch.Tensor:
    return (x + 0.5 * torch.randn_like(x)) * (torch.rand_like(x) > 0.2)


@case(
    name="rw-clip-scaled-grads-fixmatch-sgd",
    source="https://github.com/TorchSSL/TorchSSL/pull/59",
    title="FixMatch with AMP and --clip: gradients clipped while still scaled by GradScaler, SGD barely moves",
    expect="clip-scaled-grads",
    verify=lambda bug, fixed: bug["val_acc"] < 0.4 and fixed["val_acc"] > 0.8,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits_images()
    perm = torch.randperm(len(x), generator=gen(59))
    lb, ulb, val = perm[:250], perm[250:1400], perm[1400:]
    model = net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4)
    num_train_iter, warmup = 150, 10

    def _lr_lambda(step: int) -> float:
        if step < warmup:
            return step / warmup
        progress = (step - warmup) / (num_train_iter - warmup)
        return max(0.0, math.cos(7 * math.pi * progress / 16))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda)
    scaler = torch.amp.GradScaler("cpu")
    clip, p_cutoff, lambda_u, uratio, bs = 1.0, 0.95, 1.0, 3, 32
    g = gen(1)
    with nb.watch(model, optimizer):
        for _it in range(num_train_iter):
            model.train()
            i_lb = lb[torch.randint(0, len(lb), (bs,), generator=g)]
            i_ulb = ulb[torch.randint(0, len(ulb), (bs * uratio,), generator=g)]
            x_lb, y_lb, x_ulb = weak(x[i_lb]), y[i_lb], x[i_ulb]
            inputs = torch.cat((x_lb, weak(x_ulb), strong(x_ulb)))
            logits = model(inputs)
            logits_x_lb = logits[:bs]
            logits_x_ulb_w, logits_x_ulb_s = logits[bs:].chunk(2)
            sup_loss = F.cross_entropy(logits_x_lb, y_lb)
            probs = torch.softmax(logits_x_ulb_w.detach(), dim=-1)
            max_probs, max_idx = probs.max(dim=-1)
            mask = max_probs.ge(p_cutoff).float()
            unsup_loss = (F.cross_entropy(logits_x_ulb_s, max_idx, reduction="none") * mask).mean()
            total_loss = sup_loss + lambda_u * unsup_loss
            scaler.scale(total_loss).backward()
            if clip > 0:
                if not bug:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            model.zero_grad()
    model.eval()
    with torch.no_grad():
        val_acc = (model(x[val]).argmax(1) == y[val]).float().mean().item()
    return {"val_acc": val_acc, "sup_loss": sup_loss.item()}
