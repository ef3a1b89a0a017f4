"""DLRM's create_mlp initialising every bias from N(0, sqrt(1/m)): in its tiny default MLPs a large
negative bias can put a whole ReLU layer below zero for every input, and nothing trains.

Source: facebookresearch/dlrm pull request #358, "switched bias initialization to initialize to zeros per
standard Xavier initialization" https://github.com/facebookresearch/dlrm/pull/358
Reported: "As set before, the bias may be initialized to a large negative value, leading to a negative
input to Relu. This prevents any training, as all derivatives are zero afterward." Fix: zero biases.
The program is DLRM with its small default architecture (dense features 4, bottom MLP 4-3-2, three
embedding tables of dimension 2, dot interaction, top MLP 8-2-1 ending in a sigmoid), the repo's
weight/bias initialisation, SGD(lr=0.01), mini-batches of 16 and seeded synthetic click data, 6 epochs;
the seed is one whose initial biases kill the top MLP's ReLU layer (about 1 seed in 11 does).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...harness import case
from ._common import gen


def create_mlp(ln: list[int], sigmoid_layer: int, rng: np.random.Generator, zero_bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(ln) - 1):
        n, m = ln[i], ln[i + 1]
        layer = nn.Linear(n, m, bias=True)
        w = rng.normal(0.0, np.sqrt(2 / (m + n)), size=(m, n)).astype(np.float32)
        bt = (
            np.zeros(m, np.float32)
            if zero_bias
            else rng.normal(0.0, np.sqrt(1 / m), size=m).astype(np.float32)
        )
        layer.weight.data = torch.tensor(w)
        layer.bias.data = torch.tensor(bt)
        layers += [layer, nn.Sigmoid() if i == sigmoid_layer else nn.ReLU()]
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    def __init__(self, rng: np.random.Generator, zero_bias: bool) -> None:
        super().__init__()
        self.emb_l = nn.ModuleList()
        for n in (4, 3, 2):
            emb = nn.EmbeddingBag(n, 2, mode="sum")
            emb.weight.data = torch.tensor(
                rng.uniform(-np.sqrt(1 / n), np.sqrt(1 / n), size=(n, 2)).astype(np.float32)
            )
            self.emb_l.append(emb)
        self.bot_l = create_mlp([4, 3, 2], -1, rng, zero_bias)
        self.top_l = create_mlp([8, 2, 1], 1, rng, zero_bias)

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        x = self.bot_l(dense)
        ly = [emb(sparse[:, k : k + 1]) for k, emb in enumerate(self.emb_l)]
        t = torch.stack([x, *ly], dim=1)
        z = torch.bmm(t, t.transpose(1, 2))
        li, lj = torch.tril_indices(4, 4, offset=-1)
        return self.top_l(torch.cat([x, z[:, li, lj]], dim=1)).squeeze(1)


@case(
    name="dlrm-negative-bias-init-dead-relu",
    source="https://github.com/facebookresearch/dlrm/pull/358",
    title="DLRM default MLPs with N(0, sqrt(1/m)) biases: the top ReLU layer is dead from step 0, loss flat",
    expect="dead-relu",
    verify=lambda bug, fixed: (
        bug["top_dead"] == 1.0
        and abs(bug["last_loss"] - 0.6931) < 0.003
        and fixed["top_dead"] < 1.0
        and fixed["train_acc"] > 0.55
        and fixed["last_loss"] < bug["last_loss"] - 0.004
    ),
    quick=True,
    category="initialization",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(358)
    dense = torch.rand(2048, 4, generator=g)
    sparse = torch.stack([torch.randint(0, n, (2048,), generator=g) for n in (4, 3, 2)], dim=1)
    score = (
        dense @ torch.tensor([2.0, -1.0, 1.5, -2.0]) + 0.8 * (sparse[:, 0] == 1) - 0.8 * (sparse[:, 1] == 2)
    )
    label = (score > score.median()).float()
    model = DLRM(np.random.default_rng(1), zero_bias=not bug)
    loss_fn = nn.BCELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = []
    with nb.watch(model, optimizer):
        for _epoch in range(6):
            for i in range(0, 2048, 16):
                optimizer.zero_grad()
                loss = loss_fn(model(dense[i : i + 16], sparse[i : i + 16]), label[i : i + 16])
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    with torch.no_grad():
        x = model.bot_l(dense)
        ly = [emb(sparse[:, k : k + 1]) for k, emb in enumerate(model.emb_l)]
        t = torch.stack([x, *ly], dim=1)
        z = torch.bmm(t, t.transpose(1, 2))
        li, lj = torch.tril_indices(4, 4, offset=-1)
        hidden = model.top_l[1](model.top_l[0](torch.cat([x, z[:, li, lj]], dim=1)))
        acc = ((model(dense, sparse) > 0.5).float() == label).float().mean().item()
    top_dead = (hidden.max(0).values == 0).float().mean().item()
    return {"top_dead": top_dead, "train_acc": acc, "last_loss": sum(losses[-128:]) / 128}
