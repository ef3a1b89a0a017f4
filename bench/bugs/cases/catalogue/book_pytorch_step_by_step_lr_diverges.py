"""Gradient descent on the book's simple linear regression with a "really high learning rate" (1.1): the
loss climbs instead of falling.

Source: Daniel Voigt Godoy, "Deep Learning with PyTorch Step-by-Step", Chapter 0 (Learning Rate:
"Very High Learning Rate ... a step size of 1.1 ... our loss increased, instead of decreased!")
https://github.com/dvgodoy/PyTorchStepByStep/blob/master/Chapter00.ipynb
The chapter's data (true_b = 1, true_w = 2, N = 100, x ~ U(0, 1), noise 0.1 * N(0, 1), 80/20 split) and its
batch gradient descent on b + w * x with MSE, written with autograd as Chapter 1 does; the fix is the
chapter's lr = 0.1 (1000 epochs, as in the chapter).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...harness import case
from ._common import gen


class ManualLinearRegression(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.randn(1, generator=gen(42)))
        self.w = nn.Parameter(torch.randn(1, generator=gen(43)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b + self.w * x


@case(
    name="linear-regression-lr-1.1-diverges-book",
    source="https://github.com/dvgodoy/PyTorchStepByStep/blob/master/Chapter00.ipynb",
    title="batch gradient descent on b + w*x with lr=1.1: the MSE grows every epoch",
    expect="loss-diverging",
    verify=lambda bug, fixed: bug["max_loss"] > 100 * bug["first_loss"] and abs(fixed["w"] - 2) < 0.2,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(42)
    true_b, true_w, n = 1, 2, 100
    x = torch.rand(n, 1, generator=g)
    y = true_b + true_w * x + 0.1 * torch.randn(n, 1, generator=g)
    idx = torch.randperm(n, generator=g)
    x_train, y_train = x[idx[:80]], y[idx[:80]]
    model = ManualLinearRegression()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.1 if bug else 0.1)
    losses = []
    with nb.watch(model, optimizer):
        for _epoch in range(1000):
            yhat = model(x_train)
            loss = nn.functional.mse_loss(yhat, y_train)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
    finite = [v for v in losses if math.isfinite(v)]
    return {"first_loss": losses[0], "max_loss": max(finite), "last_loss": losses[-1], "w": model.w.item()}
