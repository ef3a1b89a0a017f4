"""The pytorch/examples MNIST program with AMP and gradient clipping applied to the scaled gradients.

Source: pytorch/pytorch issue #40907, "Gradient clipping with torch.cuda.amp"
(https://github.com/pytorch/pytorch/issues/40907): "when I include the line
`clip_grad_norm_(model.parameters(), 12)` the loss does not decrease anymore", in "a fully working example based
on the pytorch mnist example" (Adadelta lr=1.0, StepLR gamma=0.7, GradScaler, autocast). The clipping ran
between `scaler.scale(loss).backward()` and `scaler.step(optimizer)`, on gradients still multiplied by the
loss scale (65536), so every update is crushed. Fix (the AMP docs' recipe the answer points to):
`scaler.unscale_(optimizer)` before `clip_grad_norm_`.
Data: the digits (8x8) with the example's Net scaled to 8x8 inputs (16/32 channels); on the CPU the GradScaler
("cpu") scales float32 gradients (no autocast), which is all the bug needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.nn.utils import clip_grad_norm_
from torch.optim.lr_scheduler import StepLR

from ...data import accuracy, digits_images, loader, split
from ...harness import case


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(128, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


@case(
    name="rw-clip-scaled-grads-amp-mnist-adadelta",
    source="https://github.com/pytorch/pytorch/issues/40907",
    title="MNIST example with GradScaler: clip_grad_norm_(params, 12) on scaled gradients, loss stops decreasing",
    expect="clip-scaled-grads",
    verify=lambda bug, fixed: (
        bug["loss_drop"] < 0.2 and fixed["loss_drop"] > 0.5 and fixed["val_acc"] > bug["val_acc"] + 0.3
    ),
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    scaler = torch.amp.GradScaler("cpu")
    losses = []
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            model.train()
            for data, target in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                output = model(data)
                loss = F.nll_loss(output, target)
                scaler.scale(loss).backward()
                if not bug:
                    scaler.unscale_(optimizer)
                clip_grad_norm_(model.parameters(), 12)
                scaler.step(optimizer)
                scaler.update()
                losses.append(loss.item())
            scheduler.step()
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    return {"val_acc": accuracy(model, xv, yv), "loss_drop": (first - last) / first, "loss": last}
