"""d2l.ai "Numerical Stability and Initialization": a deep MLP whose gradients vanish through a stack of
sigmoids, and one whose gradients explode under N(0, 1) initialisation.

Source: d2l.ai, chapter_multilayer-perceptrons/numerical-stability-and-init.md
https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/numerical-stability-and-init.md
The chapter: "the sigmoid's gradient vanishes both when its inputs are large and when they are small ...
when backpropagating through many layers ... the gradient will likely be cut off at some layer", so
"ReLUs ... have emerged as the default choice"; and for exploding gradients, with "the choice of the
variance sigma^2 = 1, the matrix product explodes. When this happens because of the initialization of a
deep network, we have no chance of getting a gradient descent optimizer to converge" (the remedy the
chapter goes on to give: Xavier initialization). Two short digit-classifier runs, SGD with momentum 0.9.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


def mlp(depth: int, act: type[nn.Module], width: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(64, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train(model: nn.Module, nb, lr: float) -> tuple[float, float, float, float]:
    (xt, yt), (xv, yv) = split(*digits())
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    first_ratio, max_norm = math.nan, 0.0
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
                max_norm = max(max_norm, norm) if math.isfinite(norm) else math.inf
                if math.isnan(first_ratio):
                    first_ratio = (model[0].weight.grad.norm() / model[-1].weight.grad.norm()).item()
                optimizer.step()
    return first_ratio, max_norm, loss.item(), accuracy(model, xv, yv)


@case(
    name="deep-sigmoid-mlp-vanishing-d2l",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/numerical-stability-and-init.md",
    title="10 sigmoid hidden layers: the first layer's gradient is ~1e-9 of the last's, nothing learns",
    expect="vanishing-gradients",
    verify=lambda bug, fixed: (
        bug["first_last_ratio"] < 1e-6 and bug["val_acc"] < 0.2 and fixed["val_acc"] > 0.85
    ),
    quick=True,
    category="optimization",
)
def vanishing(bug: bool, nb) -> dict[str, float]:
    model = mlp(10, nn.Sigmoid if bug else nn.ReLU)
    if not bug:
        for layer in model[:-1]:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
    ratio, _norm, loss, acc = train(model, nb, lr=0.01)
    return {"first_last_ratio": ratio, "loss": loss, "val_acc": acc}


@case(
    name="normal-init-deep-mlp-exploding-d2l",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/numerical-stability-and-init.md",
    title="8-layer ReLU MLP with weights drawn from N(0, 1): gradients explode, the loss goes NaN",
    expect="exploding-gradients",
    verify=lambda bug, fixed: (
        bug["max_grad_norm"] > 1e3
        and not math.isfinite(bug["loss"])
        and fixed["max_grad_norm"] < 1e3
        and fixed["val_acc"] > 0.75
    ),
    category="initialization",
)
def exploding(bug: bool, nb) -> dict[str, float]:
    model = mlp(8, nn.ReLU)
    for layer in model[:-1]:
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 1.0) if bug else nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    _ratio, norm, loss, acc = train(model, nb, lr=0.03)
    return {"max_grad_norm": norm, "loss": loss, "val_acc": acc}
