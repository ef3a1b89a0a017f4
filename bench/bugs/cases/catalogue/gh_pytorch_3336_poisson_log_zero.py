"""Fitting a Poisson mean with PoissonNLLLoss(log_input=False): log(input) at input = 0 is -inf.

Source: pytorch/pytorch pull request #3336, "Prevent numerical issues with poisson_nll_loss when
log_input=False" https://github.com/pytorch/pytorch/pull/3336
Reported: "Evaluation of the logarithm of the input variable in poisson negative log likelihood leads to
NaN loss if variable being evaluated is zero." The PR's reproduction: a parameter initialised with
torch.zeros(1), RMSprop(lr=0.1), PoissonNLLLoss(log_input=False, full=True) against 200 Poisson(4)
samples. Fix (merged): `input + eps` inside the log. Today's torch already has that fix, so the program
computes the loss as it was before it (input - target * log(input) + Stirling term), with the fix
as the PR wrote it; the parameter lives in a small nn.Module so the loop can be watched.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...harness import case
from ._common import gen


def poisson_nll_loss(input: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    loss = input - target * torch.log(input + eps)
    stirling = target * torch.log(target) - target + 0.5 * torch.log(2 * math.pi * target)
    loss = loss + stirling.masked_fill(target <= 1, 0)
    return loss.mean()


class PoissonMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.param = nn.Parameter(torch.zeros(1))

    def forward(self) -> torch.Tensor:
        return self.param


@case(
    name="poisson-nll-log-of-zero",
    source="https://github.com/pytorch/pytorch/pull/3336",
    title="Poisson mean fit with log_input=False from a zero init: log(0) makes the loss and parameter NaN",
    expect="nonfinite",
    verify=lambda bug, fixed: (
        not math.isfinite(bug["mean"]) and abs(fixed["mean"] - fixed["sample_mean"]) < 0.2
    ),
    quick=True,
    category="numerics",
)
def program(bug: bool, nb) -> dict[str, float]:
    samples = torch.poisson(torch.full((200,), 4.0), generator=gen(3336))
    model = PoissonMean()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.1)
    with nb.watch(model, optimizer):
        for _i in range(5000):
            optimizer.zero_grad()
            output = poisson_nll_loss(model(), samples, eps=0.0 if bug else 1e-8)
            output.backward()
            optimizer.step()
    return {"mean": model.param.item(), "sample_mean": samples.mean().item()}
