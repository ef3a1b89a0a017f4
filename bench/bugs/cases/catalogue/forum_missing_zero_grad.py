"""Forgetting optimizer.zero_grad(): gradients accumulate across steps and the loss blows up.

Source: PyTorch forum, "Why do we need to set the gradients manually to zero in pytorch?"
https://discuss.pytorch.org/t/why-do-we-need-to-set-the-gradients-manually-to-zero-in-pytorch/4903
The loop there is the classic MLP classifier loop with SGD; the bug removes `optimizer.zero_grad()`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


@case(
    name="missing-zero-grad-mlp",
    source="https://discuss.pytorch.org/t/why-do-we-need-to-set-the-gradients-manually-to-zero-in-pytorch/4903",
    title="MLP classifier trained with SGD; optimizer.zero_grad() never called",
    expect="grad-not-zeroed",
    verify=lambda bug, fixed: bug["val_acc"] < fixed["val_acc"] - 0.1 and fixed["val_acc"] > 0.85,
    quick=True,
    first_effect=2,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=32):
                if not bug:
                    optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
    return {"val_acc": accuracy(model, xv, yv), "loss": loss.item()}
