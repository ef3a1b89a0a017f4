"""Healthy: pytorch/examples MNIST, `nn.Dropout` modules and `F.log_softmax(x, dim=1)` + `F.nll_loss`.

Source: pytorch/examples, mnist/main.py (https://github.com/pytorch/examples/blob/main/mnist/main.py): Net with
`nn.Dropout(0.25)` / `nn.Dropout(0.5)` modules (switched off by `model.eval()`), `F.log_softmax(x, dim=1)`
and `F.nll_loss`, Adadelta(lr=1.0) with StepLR(step_size=1, gamma=0.7) stepped per epoch, batch 64. The
counterpart of the loss-space and dropout bugs: nbdebug must stay silent.
Data: the digits (8x8) with the Net scaled to 8x8 inputs (16/32 channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR

from ...data import digits_images, loader, split
from ...harness import case


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
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
    name="rw-healthy-mnist-dropout-modules-log-softmax",
    source="https://github.com/pytorch/examples/blob/main/mnist/main.py",
    title="pytorch/examples MNIST: nn.Dropout modules, log_softmax(dim=1) + nll_loss, Adadelta + StepLR",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.9 and m["eval_disagreement"] == 0.0,
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            model.train()
            for data, target in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                output = model(data)
                loss = F.nll_loss(output, target)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                pred1, pred2 = model(xv).argmax(1), model(xv).argmax(1)
            scheduler.step()
    return {
        "val_acc": (pred1 == yv).float().mean().item(),
        "eval_disagreement": (pred1 != pred2).float().mean().item(),
        "loss": loss.item(),
    }
