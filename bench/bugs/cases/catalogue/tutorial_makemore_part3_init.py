"""Karpathy's makemore part 3 MLP (embedding -> tanh hidden -> logits) with the lecture's first,
unscaled initialisation: a first loss of ~27 instead of ln(27) = 3.3, and a tanh layer pinned at +-1.

Source: karpathy/nn-zero-to-hero, lectures/makemore/makemore_part3_bn.ipynb
https://github.com/karpathy/nn-zero-to-hero/blob/master/lectures/makemore/makemore_part3_bn.ipynb
The lecture starts from `torch.randn` parameters and fixes two things, which the notebook keeps:
`W2 = torch.randn(...) * 0.01` and `b2 = torch.randn(...) * 0` (the logits start near zero, so the first
loss is ~ln(27) instead of the "hockey stick" start near 27), and a scaled W1 (`* 0.2`, later
`* (5/3)/sqrt(fan_in)`) with `b1 * 0.01`, so the tanh hidden layer is not saturated. The program keeps the
notebook's model, batch 32, lr 0.1 SGD updates and its torch.tanh; names.txt is replaced by synthetic
names from a seeded bigram chain over the same 27 tokens, and the run is 1500 steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import context_dataset, gen, names


class MLP(nn.Module):
    def __init__(
        self, g: torch.Generator, scale_out: bool, scale_hidden: bool, n_embd: int = 10, n_hidden: int = 200
    ):
        super().__init__()
        fan_in = n_embd * 3
        self.C = nn.Parameter(torch.randn((27, n_embd), generator=g))
        self.W1 = nn.Parameter(
            torch.randn((fan_in, n_hidden), generator=g) * ((5 / 3) / fan_in**0.5 if scale_hidden else 1)
        )
        self.b1 = nn.Parameter(torch.randn(n_hidden, generator=g) * (0.01 if scale_hidden else 1))
        self.W2 = nn.Parameter(torch.randn((n_hidden, 27), generator=g) * (0.01 if scale_out else 1))
        self.b2 = nn.Parameter(torch.randn(27, generator=g) * (0 if scale_out else 1))

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        emb = self.C[xb]
        self.hpreact = emb.view(emb.shape[0], -1) @ self.W1 + self.b1
        h = torch.tanh(self.hpreact)
        return h @ self.W2 + self.b2


def run(model: MLP, nb, steps: int = 1500) -> tuple[list[float], float, float]:
    xtr, ytr = context_dataset(names(3000, seed=7))
    g = gen(2147483647)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # p.data += -lr * p.grad
    losses, sat = [], []
    with nb.watch(model, optimizer):
        for _i in range(steps):
            ix = torch.randint(0, xtr.shape[0], (32,), generator=g)
            logits = model(xtr[ix])
            loss = F.cross_entropy(logits, ytr[ix])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            sat.append((torch.tanh(model.hpreact).abs() > 0.99).float().mean().item())
    with torch.no_grad():
        full = F.cross_entropy(model(xtr), ytr).item()
    return losses, full, sum(sat[:50]) / 50


@case(
    name="makemore-unscaled-output-init-initial-loss",
    source="https://github.com/karpathy/nn-zero-to-hero/blob/master/lectures/makemore/makemore_part3_bn.ipynb",
    title="char MLP with W2, b2 = torch.randn (no * 0.01 / * 0): the first loss is ~20-30, not ln(27)",
    expect="initial-loss",
    verify=lambda bug, fixed: (
        bug["first_loss"] > 10 and fixed["first_loss"] < 3.6 and fixed["train_loss"] < bug["train_loss"]
    ),
    quick=True,
    category="initialization",
)
def initial_loss(bug: bool, nb) -> dict[str, float]:
    model = MLP(gen(2147483647), scale_out=not bug, scale_hidden=True)
    losses, full, _sat = run(model, nb)
    return {"first_loss": losses[0], "train_loss": full}


@case(
    name="makemore-unscaled-hidden-init-tanh-saturated",
    source="https://github.com/karpathy/nn-zero-to-hero/blob/master/lectures/makemore/makemore_part3_bn.ipynb",
    title="char MLP with W1, b1 = torch.randn (no fan-in scaling): most tanh units sit at +-1",
    expect="saturated-activation",
    verify=lambda bug, fixed: (
        bug["saturated"] > 0.5 and fixed["saturated"] < 0.2 and fixed["train_loss"] < bug["train_loss"]
    ),
    category="initialization",
)
def saturated(bug: bool, nb) -> dict[str, float]:
    model = MLP(gen(2147483647), scale_out=True, scale_hidden=not bug)
    _losses, full, sat = run(model, nb)
    return {"saturated": sat, "train_loss": full}
