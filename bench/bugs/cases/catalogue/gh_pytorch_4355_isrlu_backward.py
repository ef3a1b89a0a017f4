"""A custom ISRLU activation (torch.autograd.Function) whose backward ignores grad_out.

Source: pytorch/pytorch issue #4355, "gradcheck fails with cryptic error"
https://github.com/pytorch/pytorch/issues/4355
Reported: "I tried implementing the ISRLU activation but the `gradcheck` fails." The backward was
`return ctx.nisr ** 3, None`: the local derivative (1 + a x^2)^(-3/2) is right, but it is never multiplied
by the incoming gradient, so the chain rule breaks for any grad_out other than ones. Fix:
`return grad_out * ctx.nisr ** 3, None`. The program runs the reporter's check (gradcheck on the
Function, here through nbdebug.gradcheck) and then trains an MLP that uses ISRLU on the digits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


def make_isrlu(fixed: bool) -> Any:
    class ISRLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, tensor: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
            negatives = torch.min(tensor, 0 * tensor)
            nisr = torch.rsqrt(1.0 + alpha * (negatives**2))
            ctx.save_for_backward(nisr)
            return tensor * nisr

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
            (nisr,) = ctx.saved_tensors
            return (grad_out * nisr**3 if fixed else nisr**3), None

    return ISRLU


class Net(nn.Module):
    def __init__(self, act: Any) -> None:
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(64, 64), nn.Linear(64, 10), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act.apply(self.fc1(x)))


def max_grad_error(fn: Any, x: torch.Tensor) -> float:
    """Largest |analytic - numeric| derivative of sum(w * fn(x)) over x, in float64."""
    x = x.detach().double().requires_grad_(True)
    out = fn(x)
    w = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
    (analytic,) = torch.autograd.grad((w * out).sum(), x)
    numeric = torch.zeros_like(x)
    flat, eps = x.detach().clone().reshape(-1), 1e-6
    for i in range(flat.numel()):
        plus, minus = flat.clone(), flat.clone()
        plus[i] += eps
        minus[i] -= eps
        numeric.view(-1)[i] = ((w * fn(plus.view_as(x))).sum() - (w * fn(minus.view_as(x))).sum()) / (2 * eps)
    return (analytic - numeric).abs().max().item()


@case(
    name="isrlu-backward-ignores-grad-out",
    source="https://github.com/pytorch/pytorch/issues/4355",
    title="custom ISRLU autograd.Function whose backward returns nisr**3 without grad_out",
    expect="gradcheck-failed",
    verify=lambda bug, fixed: (
        bug["grad_error"] > 1e-2 and fixed["grad_error"] < 1e-6 and fixed["val_acc"] > bug["val_acc"]
    ),
    quick=True,
    category="autograd",
)
def program(bug: bool, nb) -> dict[str, float]:
    isrlu = make_isrlu(fixed=not bug)
    x_check = torch.randn(20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    nb.gradcheck(isrlu, x_check)
    err = max_grad_error(isrlu.apply, x_check[:4])
    (xt, yt), (xv, yv) = split(*digits())
    model = Net(isrlu)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            for xb, yb in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                optimizer.step()
    return {"grad_error": err, "val_acc": accuracy(model, xv, yv)}
