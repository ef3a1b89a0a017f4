"""Linear regression whose target is (N,) while the model outputs (N, 1): MSELoss broadcasts to (N, N).

Source: pytorch/pytorch issue #16045, "Bug: fail to throw error when computing loss between tensors with
shapes [n, 1] and [n]" https://github.com/pytorch/pytorch/issues/16045
Reported: "the correct estimates of this straightforward linear regression problem are not found and the
loss fails to decrease into a region near the global optimum ... Yet, no error is raised."
Fix (in the report): `y = y.reshape(sample_size, 1)`. The program is the issue's own code.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen


@case(
    name="mse-broadcast-linear-regression",
    source="https://github.com/pytorch/pytorch/issues/16045",
    title="nn.Linear(2, 1) fit with MSELoss on a (100,) target against a (100, 1) output",
    expect="target-broadcast",
    verify=lambda bug, fixed: bug["w_error"] > 3.0 and fixed["w_error"] < 0.5,
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(16045)
    sample_size = 100
    x = torch.randn((sample_size, 2), generator=g)
    eps = torch.randn(sample_size, generator=g)
    y = 10 + 9 * x[:, 0] - 2 * x[:, 1] + eps
    if not bug:
        y = y.reshape(sample_size, 1)
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_func = nn.MSELoss()
    with nb.watch(model, optimizer):
        for _epoch in range(30):
            optimizer.zero_grad()
            yhat = model(x)
            loss_val = loss_func(yhat, y)
            loss_val.backward()
            optimizer.step()
    w = model.weight.detach()[0]
    return {"w_error": (w - torch.tensor([9.0, -2.0])).norm().item(), "bias": model.bias.item()}
