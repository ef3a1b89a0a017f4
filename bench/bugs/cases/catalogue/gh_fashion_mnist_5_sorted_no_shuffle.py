"""An MLP trained by mini-batch SGD on a label-sorted training set without shuffling: it ends every epoch on
the last class and predicts (almost) only that class.

Source: zalandoresearch/fashion-mnist pull request #5, "shuffling the dataset"
https://github.com/zalandoresearch/fashion-mnist/pull/5
"Previously, both training and testing data were sorted by their labels, 0s first, followed by all 1s,
2s, ... The problem is that, if people forget to shuffle the data by themselves, then learning algorithms
may fail especially when using mini-batch." Fix: shuffle (the PR shuffles the files; a user passes
shuffle=True to the DataLoader). The program: the digits sorted by label, DataLoader(shuffle=False) vs
(shuffle=True), an MLP, SGD(lr=0.1), batch 64, 2 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


@case(
    name="label-sorted-data-no-shuffle-predicts-last-class",
    source="https://github.com/zalandoresearch/fashion-mnist/pull/5",
    title="mini-batch SGD over a label-sorted training set with shuffle=False: predictions collapse to one class",
    expect=("unshuffled-data", "predicts-mode"),
    verify=lambda bug, fixed: (
        bug["top_class_share"] > 0.5 and bug["val_acc"] < 0.5 and fixed["val_acc"] > 0.85
    ),
    quick=True,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    order = torch.argsort(yt, stable=True)
    xt, yt = xt[order], yt[order]
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            for x, y in loader(xt, yt, batch_size=64, shuffle=not bug):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = model(xv).argmax(1)
    share = torch.bincount(pred, minlength=10).max().item() / len(pred)
    return {"top_class_share": share, "val_acc": (pred == yv).float().mean().item()}
