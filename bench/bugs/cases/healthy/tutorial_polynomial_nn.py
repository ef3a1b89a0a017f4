""" "Learning PyTorch with Examples", PyTorch: nn: the same polynomial fit of sin(x) with the nn package but
no optimizer: `model.zero_grad()`, `loss.backward()`, then `param -= learning_rate * param.grad` under
torch.no_grad() (lr=1e-6, MSELoss(reduction='sum'), 2000 full-batch iterations).

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/examples_nn/polynomial_nn.py
The tutorial prints the loss every 100 iterations falling to ~10 and the fitted third-order polynomial.
A user watches it with `nbdebug.watch(model)`: there is no optimizer to hand over, so every backward is a
step. Nothing is scaled: the program runs as written.
"""

from __future__ import annotations

import math

import torch

from ...harness import case


@case(
    name="healthy-tut-polynomial-manual-update",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/examples_nn/polynomial_nn.py",
    title="Polynomial fit of sin(x) updated by hand (param -= lr * grad), watched without an optimizer",
    healthy=True,
    verify=lambda m: m["final_loss"] < 0.02 * m["first_loss"] and m["final_loss"] < 50,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    learning_rate = 1e-6
    first = None
    with nb.watch(model):
        for _t in range(2000):
            y_pred = model(xx)
            loss = loss_fn(y_pred, y)
            first = loss.item() if first is None else first
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for param in model.parameters():
                    param -= learning_rate * param.grad
    return {"first_loss": first, "final_loss": loss.item()}
