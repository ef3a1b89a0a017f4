"""A product reduction written as a torch.autograd.Function whose backward forgets grad_output.

Source: pytorch/pytorch issue #995, "backward of -torch.prod(x) missing negative sign"
https://github.com/pytorch/pytorch/issues/995
Reported: `prod = -s.prod(); prod.backward()` "gives 3,2 instead of -3,-2"; the maintainers traced it to
the Prod Function in torch/autograd/_functions/reduce.py, whose backward "does not multiply by
grad_output", and fixed it. The program writes that Function the way it was (backward returns
prod / input), checks it with gradcheck (here nbdebug.gradcheck), and fits a small product-of-factors
model y = -prod(softplus(W x)) by gradient descent with it, where the sign error sends the fit the
wrong way.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen
from .gh_pytorch_4355_isrlu_backward import max_grad_error


def make_prod(fixed: bool) -> Any:
    class Prod(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, input: torch.Tensor) -> torch.Tensor:
            result = input.prod(dim=-1)
            ctx.save_for_backward(input, result)
            return result

        @staticmethod
        def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
            input, result = ctx.saved_tensors
            grad = result[..., None] / input
            return grad_output[..., None] * grad if fixed else grad

    return Prod


class ProductModel(nn.Module):
    def __init__(self, prod: Any) -> None:
        super().__init__()
        self.factors = nn.Linear(4, 3)
        self.prod = prod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.prod.apply(F.softplus(self.factors(x)))


@case(
    name="prod-function-backward-ignores-grad-output",
    source="https://github.com/pytorch/pytorch/issues/995",
    title="custom Prod autograd.Function whose backward does not multiply by grad_output",
    expect="gradcheck-failed",
    verify=lambda bug, fixed: (
        bug["grad_error"] > 1e-2
        and fixed["grad_error"] < 1e-6
        and fixed["final_mse"] < 0.1 * bug["final_mse"]
    ),
    category="autograd",
)
def program(bug: bool, nb) -> dict[str, float]:
    prod = make_prod(fixed=not bug)
    g = gen(995)
    x_check = torch.rand(3, 4, dtype=torch.float64, generator=g) + 0.5
    nb.gradcheck(prod, x_check)
    err = max_grad_error(prod.apply, x_check)
    teacher = ProductModel(make_prod(True))
    x = torch.randn(512, 4, generator=g)
    with torch.no_grad():
        y = teacher(x)
    model = ProductModel(prod)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with nb.watch(model, optimizer):
        for _step in range(200):
            optimizer.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    return {"grad_error": err, "final_mse": loss.item()}
