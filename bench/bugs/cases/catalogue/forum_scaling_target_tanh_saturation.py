"""A 2x5 tanh MLP regressing targets around -2700 without scaling them: the updates push the hidden
units into tanh saturation and the model settles at the targets' mean.

Source: PyTorch forum, "Scaling target variables" https://discuss.pytorch.org/t/scaling-target-variables/41046
Reported: inputs scaled to [-1, 1], "targets are all values around -2700 ... xavier initialization with a
tanh activation function across 2 hidden layers (5 nodes each) ... unable to train properly and steadies
off at predictions being just the mean of all the targets. However, when I scale the targets to be
between [0,1] the model trains properly." Answer: "If your initialized outputs is too far away from the
target ... the gradient is too big. After several updates, your weights move too far and fall into
saturation area of the tanh() activation and stop learning." Fix: scale the targets. Plain SGD
(lr=1e-2; the post gives no optimizer), MSE, batch 32, 10 epochs, a seeded synthetic regression.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(4, 5), nn.Linear(5, 5), nn.Linear(5, 1)
        for layer in (self.fc1, self.fc2, self.out):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pre1 = self.fc1(x)
        h = torch.tanh(self.pre1)
        self.pre2 = self.fc2(h)
        return self.out(torch.tanh(self.pre2))


@case(
    name="unscaled-targets-tanh-saturation",
    source="https://discuss.pytorch.org/t/scaling-target-variables/41046",
    title="tanh 2x5 MLP on targets ~ -2700 (unscaled): hidden pre-activations blow past +-5, output = mean",
    expect="saturated-activation",
    verify=lambda bug, fixed: bug["saturated"] > 0.5 and bug["r2"] < 0.2 and fixed["r2"] > 0.8,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(41046)
    x = torch.rand(2000, 4, generator=g) * 2 - 1
    y = -2700 + 60 * torch.sin(2 * x[:, 0]) + 40 * x[:, 1] * x[:, 2] + 30 * x[:, 3]
    y_mean, y_span = y.mean(), y.max() - y.min()
    target = y if bug else (y - y.min()) / y_span
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    with nb.watch(model, optimizer):
        for _epoch in range(10):
            for xb, yb in loader(x, target[:, None], batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(xb), yb)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = model(x).squeeze(1)
        pred = pred if bug else pred * y_span + y.min()
        sat = torch.cat([model.pre1, model.pre2], 1).abs().gt(5).float().mean().item()
    r2 = 1 - ((pred - y) ** 2).mean() / ((y - y_mean) ** 2).mean()
    return {"saturated": sat, "r2": r2.item()}
