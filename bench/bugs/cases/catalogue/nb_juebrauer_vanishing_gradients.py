"""The 20-layer sigmoid network of a "vanishing gradients problem" teaching notebook, trained.

Source: juebrauer/code_jb, notebook "The Vanishing Gradients Problem" https://github.com/juebrauer/code_jb
The notebook builds `DeepNet(depth=20)` from `nn.Linear(100, 100)` + `nn.Sigmoid()` blocks ("prone to
vanishing gradients") and prints the mean |grad| per layer after one backward: ~1e-2 at layer 20, 0 at
layers 1-10. The program trains that network (width 64 here) on the digits with SGD(lr=5e-3,
momentum=0.9); the fix is the usual one, ReLU with Kaiming initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


class DeepNet(nn.Module):
    def __init__(self, depth: int = 20, sigmoid: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _i in range(depth):
            layers.append(nn.Linear(64, 64))
            layers.append(nn.Sigmoid() if sigmoid else nn.ReLU())
            if not sigmoid:
                nn.init.kaiming_normal_(layers[-2].weight, nonlinearity="relu")
                nn.init.zeros_(layers[-2].bias)
        self.net = nn.Sequential(*layers)
        self.output = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.net(x))


@case(
    name="deep-sigmoid-net-vanishing-notebook",
    source="https://github.com/juebrauer/code_jb",
    title="20 Linear+Sigmoid layers: the first layers' gradients are ~0, the network does not learn",
    expect="vanishing-gradients",
    verify=lambda bug, fixed: bug["first_grad"] < 1e-10 and bug["val_acc"] < 0.2 and fixed["val_acc"] > 0.4,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = DeepNet(depth=20, sigmoid=bug)
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-3, momentum=0.9)
    first = None
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                first = model.net[0].weight.grad.abs().mean().item() if first is None else first
                optimizer.step()
    return {"first_grad": first, "val_acc": accuracy(model, xv, yv)}
