"""Fitting y = x^4 on x in [-100, 100] with a sigmoid hidden layer and no scaling: the sigmoid saturates.

Source: Stack Overflow question 52800582, "Why do I fail to predict y=x**4 with Keras? (y=x**3 works)"
http://stackoverflow.com.mevn.net/questions/52800582/why-do-i-fail-to-predict-y-x4-with-keras-y-x3-works
Answer: "The inputs are in the range [-100, 100] and hence the output of the first Dense layer will be
about 58 * 0.2 ~= 10 ... Because this is fed into a sigmoid activation it is likely to saturate ... The
other issue has to do with the magnitude of outputs y"; fix: scale inputs and outputs with
StandardScaler. The model is the question's (Dense sigmoid, Dense ELU, linear output; Glorot-uniform
init), rewritten in PyTorch, Adam, full batch, MSE.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.d1, self.d2, self.out = nn.Linear(1, 10), nn.Linear(10, 10), nn.Linear(10, 1)
        for layer in (self.d1, self.d2, self.out):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.pre = self.d1(x)
        return self.out(nn.functional.elu(self.d2(torch.sigmoid(self.pre))))


@case(
    name="unscaled-input-sigmoid-saturation-x4",
    source="http://stackoverflow.com.mevn.net/questions/52800582/why-do-i-fail-to-predict-y-x4-with-keras-y-x3-works",
    title="y = x^4 on unscaled x in [-100, 100]: the sigmoid layer saturates, the fit fails",
    expect=("saturated-activation", "unnormalized-input"),
    verify=lambda bug, fixed: bug["saturated"] > 0.5 and bug["r2"] < 0.3 and fixed["r2"] > 0.9,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    x = torch.linspace(-100, 100, 1001)[:, None]
    y = x**4
    xs = x if bug else (x - x.mean()) / x.std()
    ys = y if bug else (y - y.mean()) / y.std()
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with nb.watch(model, optimizer):
        for _epoch in range(500):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(xs), ys)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        pred = model(xs)
        pred = pred if bug else pred * y.std() + y.mean()
        sat = model.pre.abs().gt(5).float().mean().item()
    r2 = 1 - ((pred - y) ** 2).mean() / ((y - y.mean()) ** 2).mean()
    return {"saturated": sat, "r2": r2.item()}
