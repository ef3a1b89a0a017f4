"""daisyRec's pointwise matrix-factorization recommender: sigmoid on the score, then BCEWithLogitsLoss.

Source: yudi-mars/daisyRec pull request #15, "Do not need sigmoid because there is sigmoid in
BCEWithLogitsLoss" https://github.com/yudi-mars/daisyRec/pull/15
Reported: "Do not need sigmoid because there is sigmoid in BCEWithLogitsLoss. Otherwise loss does not
converge." Fix (merged): return the raw score. The program is a pointwise MF model (user/item embeddings,
dot product) on implicit feedback with sampled negatives, Adam; the interactions are synthetic, drawn
from a seeded low-rank preference model. (Embedding size, lr and batch size are not given in the PR.)
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


class PointMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int, sigmoid: bool) -> None:
        super().__init__()
        self.embed_user = nn.Embedding(n_users, factors)
        self.embed_item = nn.Embedding(n_items, factors)
        nn.init.normal_(self.embed_user.weight, std=0.01)
        nn.init.normal_(self.embed_item.weight, std=0.01)
        self.sigmoid = sigmoid

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        pred = (self.embed_user(user) * self.embed_item(item)).sum(dim=-1)
        return torch.sigmoid(pred) if self.sigmoid else pred


@case(
    name="sigmoid-bcelogits-pointwise-mf",
    source="https://github.com/yudi-mars/daisyRec/pull/15",
    title="pointwise MF recommender applying torch.sigmoid before nn.BCEWithLogitsLoss",
    expect="sigmoid-before-bce-logits",
    verify=lambda bug, fixed: bug["epoch_loss"] > 0.5 and fixed["epoch_loss"] < 0.35,
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(15)
    n_users, n_items = 200, 300
    pu, qi = torch.randn(n_users, 4, generator=g), torch.randn(n_items, 4, generator=g)
    users = torch.randint(0, n_users, (6000,), generator=g)
    items = torch.randint(0, n_items, (6000,), generator=g)
    label = ((pu[users] * qi[items]).sum(1) > 0.5).float()  # observed interaction or sampled negative
    model = PointMF(n_users, n_items, factors=32, sigmoid=bug)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    pairs = torch.stack([users, items], dim=1)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            losses = []
            for ui, y in loader(pairs, label, batch_size=256):
                optimizer.zero_grad()
                loss = criterion(model(ui[:, 0], ui[:, 1]), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    return {"epoch_loss": sum(losses) / len(losses)}
