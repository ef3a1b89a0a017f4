"""A binary classifier trained with plain BCEWithLogitsLoss on an 84/16 label split: its predictions stick
at 0.

Source: PyTorch forum, "Predictions stuck at zero when positive label (1) is only 16% of data"
https://discuss.pytorch.org/t/predictions-stuck-at-zero-when-positive-label-1-is-only-16-of-data/145203/2
Reported: "when I run the code on a dataset with 84/16 % split of labels 0 and 1, all my val preds end up
being 0"; the answer outlines `BCEWithLogitsLoss(pos_weight=...)` with pos_weight = n_negative /
n_positive. The program: an MLP on seeded synthetic features where the positive class overlaps the
negatives, 84/16 split, Adam 1e-3, batch 64; the fix adds pos_weight=84/16.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def imbalanced(n: int, g: torch.Generator, pos: float) -> tuple[torch.Tensor, torch.Tensor]:
    y = (torch.rand(n, generator=g) < pos).float()
    x = torch.randn(n, 16, generator=g)
    x[:, :4] += 0.6 * y[:, None]
    return x, y


@case(
    name="imbalanced-84-16-bce-predicts-zero",
    source="https://discuss.pytorch.org/t/predictions-stuck-at-zero-when-positive-label-1-is-only-16-of-data/145203/2",
    title="binary classifier on an 84/16 split with unweighted BCEWithLogitsLoss: validation predictions all 0",
    expect="class-imbalance",
    verify=lambda bug, fixed: bug["val_recall"] < 0.25 and fixed["val_recall"] > 0.6,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(145203)
    xt, yt = imbalanced(3000, g, 0.16)
    xv, yv = imbalanced(800, g, 0.16)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    pos_weight = None if bug else torch.tensor([(yt == 0).sum() / (yt == 1).sum()])
    criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            for x, y in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                loss = criterion(model(x).squeeze(1), y)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = (model(xv).squeeze(1) > 0).float()
    recall = ((pred == 1) & (yv == 1)).sum().item() / max(1.0, (yv == 1).sum().item())
    return {"val_recall": recall, "pred_positive_share": pred.mean().item()}
