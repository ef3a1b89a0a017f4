"""CS336 assignment 1's learning-rate tuning exercise: the toy SGD (lr / sqrt(t + 1)) on mean(w^2) diverges
at lr = 1e3.

Source: a student solution notebook of Stanford CS336 (spring 2025) assignment 1,
https://github.com/kenminglee/cs336-spring2025-assignment1-new
The notebook implements the assignment's `SGD(torch.optim.Optimizer)` with the update
`p.data -= lr / math.sqrt(t + 1) * grad` and runs `run_training_loop` (weights = 5 * randn(10, 10),
loss = (weights**2).mean(), 10 iterations) at lr 1, 10, 100 and 1000; the exercise asks whether the loss
decays faster, slower, or diverges. At lr = 1e3 it diverges (grows by orders of magnitude each step);
the fix is a learning rate that decays it (lr = 100 here). The weights live in a small nn.Module.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ...harness import case
from ._common import gen


class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3) -> None:
        if lr < 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, {"lr": lr})

    def step(self, closure: Callable | None = None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                t = state.get("t", 0)
                p.data -= lr / math.sqrt(t + 1) * p.grad.data
                state["t"] = t + 1
        return loss


class Weights(nn.Module):
    def __init__(self, init: torch.Tensor) -> None:
        super().__init__()
        self.weights = nn.Parameter(init.clone())

    def forward(self) -> torch.Tensor:
        return (self.weights**2).mean()


@case(
    name="toy-sgd-lr-1e3-diverges-cs336",
    source="https://github.com/kenminglee/cs336-spring2025-assignment1-new",
    title="toy SGD on mean(w^2) with lr=1e3: the loss grows by orders of magnitude every step",
    expect="loss-diverging",
    verify=lambda bug, fixed: (
        bug["last_loss"] > 1e6 * bug["first_loss"] and fixed["last_loss"] < 0.1 * fixed["first_loss"]
    ),
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    model = Weights(5 * torch.randn((10, 10), generator=gen(336)))
    opt = SGD(model.parameters(), lr=1e3 if bug else 1e2)
    losses = []
    with nb.watch(model, opt):
        for _t in range(10):
            opt.zero_grad()
            loss = model()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return {"first_loss": losses[0], "last_loss": losses[-1]}
