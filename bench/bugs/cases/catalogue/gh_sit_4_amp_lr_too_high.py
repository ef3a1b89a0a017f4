"""A ViT trained under mixed precision (autocast + GradScaler) with too high a learning rate.

Source: Sara-Ahmed/SiT issue #4, "--resume issue...!" https://github.com/Sara-Ahmed/SiT/issues/4
Reported: training kept producing inf/nan losses that the reporter could only stop with
`torch.cuda.amp.autocast(enabled=False)`; the author: "the training loss is going down so fast ... I would
start with reducing the learning rate first before disabling the autocast." Scaled down to a CPU run:
a small ViT on 2x2 patches of the 8x8 digits (SiT's fine-tuning stage, classification), AdamW with
weight decay 0.05, the step under torch.autocast("cpu", dtype=torch.bfloat16) with
torch.amp.GradScaler("cpu"), batch 32, 3 epochs; the bug runs AdamW at lr=0.1, the fix at 5e-3. (On this small
CPU run the too-high rate leaves the model at chance rather than producing inf/NaN.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class ViT(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.to_patch = nn.Conv2d(1, dim, kernel_size=2, stride=2)
        self.pos = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, batch_first=True, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.encoder(self.to_patch(x).flatten(2).transpose(1, 2) + self.pos)
        return self.head(tokens.mean(1))


@case(
    name="amp-gradscaler-vit-lr-too-high",
    source="https://github.com/Sara-Ahmed/SiT/issues/4",
    title="ViT under autocast(bfloat16) + GradScaler('cpu') with AdamW lr=0.1: training breaks down",
    expect="lr-too-high",
    verify=lambda bug, fixed: (
        bug["val_acc"] < 0.2 and fixed["nonfinite_steps"] == 0 and fixed["val_acc"] > 0.7
    ),
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = ViT()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1 if bug else 5e-3, weight_decay=0.05)
    scaler = torch.amp.GradScaler("cpu")
    nonfinite = 0
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            model.train()
            for images, labels in loader(xt, yt, batch_size=32):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = F.cross_entropy(model(images).float(), labels)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                nonfinite += int(not torch.isfinite(loss).item())
    model.eval()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"nonfinite_steps": float(nonfinite), "val_acc": acc}
