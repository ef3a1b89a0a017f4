"""A deep bias-free ReLU MLP initialised with nn.init.normal_ (std 1): activations and gradients explode.

Source: "学习笔记|Pytorch使用教程13" (PyTorch tutorial notes 13: vanishing/exploding gradients, Xavier and
Kaiming initialisation) https://blog.csdn.net/qq_24739717/article/details/102896678
The tutorial's MLP is `nn.ModuleList([nn.Linear(neural_num, neural_num, bias=False) ...])` initialised
with a standard normal; printing each layer's output std shows it growing until it is NaN ("output is
nan in {} layers"), and the fix is to initialise with the right scale (Kaiming for ReLU). The program
trains that MLP (20 layers of 64 units, ReLU, a linear head) on the digits with SGD(lr=3e-3,
momentum=0.9); the fix uses nn.init.kaiming_normal_.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


class MLP(nn.Module):
    def __init__(self, neural_num: int, layers: int) -> None:
        super().__init__()
        self.inp = nn.Linear(64, neural_num, bias=False)
        self.linears = nn.ModuleList([nn.Linear(neural_num, neural_num, bias=False) for _ in range(layers)])
        self.head = nn.Linear(neural_num, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        for linear in self.linears:
            x = torch.relu(linear(x))
        return self.head(x)

    def initialize(self, kaiming: bool) -> None:
        for m in [self.inp, *self.linears]:
            if kaiming:
                nn.init.kaiming_normal_(m.weight.data)
            else:
                nn.init.normal_(m.weight.data)  # std 1


@case(
    name="normal-init-deep-mlp-exploding-csdn",
    source="https://blog.csdn.net/qq_24739717/article/details/102896678",
    title="20-layer bias-free ReLU MLP initialised with nn.init.normal_: gradients explode to inf/NaN",
    expect="exploding-gradients",
    verify=lambda bug, fixed: (
        bug["max_grad_norm"] > 1e3 and fixed["max_grad_norm"] < 1e3 and fixed["val_acc"] > 0.3
    ),
    category="initialization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = MLP(neural_num=64, layers=20)
    model.initialize(kaiming=not bug)
    optimizer = torch.optim.SGD(model.parameters(), lr=3e-3, momentum=0.9)
    max_norm = 0.0
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
                max_norm = max(max_norm, norm) if math.isfinite(norm) else math.inf
                optimizer.step()
    return {"max_grad_norm": max_norm, "val_acc": accuracy(model, xv, yv)}
