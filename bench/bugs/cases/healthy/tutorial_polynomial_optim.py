""" "Learning PyTorch with Examples", PyTorch: optim: a third-order polynomial (nn.Linear(3, 1) on the
features x, x^2, x^3) fit to y = sin(x) on 2000 points in [-pi, pi] with MSELoss(reduction='sum') and
torch.optim.SGD lr=1e-6, 2000 full-batch iterations.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/examples_nn/polynomial_optim.py
The tutorial prints the summed loss every 100 iterations, falling from thousands to ~10, and the fitted
polynomial y ~ 0.86 x - 0.09 x^3. The inputs are raw powers of x (x^3 reaches 31) and the loss is a sum.
Nothing is scaled: the program runs as written. Before training, the user runs
`nbdebug.check(model, (xx, y), loss_fn)`.
"""

from __future__ import annotations

import math

import torch

from ...harness import case


@case(
    name="healthy-tut-polynomial-sgd-sum-loss",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/examples_nn/polynomial_optim.py",
    title="Polynomial fit of sin(x), unnormalized x^1..x^3 features, MSELoss(sum), SGD lr=1e-6",
    healthy=True,
    verify=lambda m: m["final_loss"] < 0.02 * m["first_loss"] and m["final_loss"] < 50,
    quick=True,
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
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    first = None
    nb.check(model, (xx, y), loss_fn)
    with nb.watch(model, optimizer):
        for _t in range(2000):
            y_pred = model(xx)
            loss = loss_fn(y_pred, y)
            first = loss.item() if first is None else first
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return {"first_loss": first, "final_loss": loss.item()}
