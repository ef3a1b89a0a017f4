"""An MLP digit classifier trained with Adam at a too-high learning rate: the loss explodes, then every ReLU
of a layer is dead and the loss sits at ln(10).

Source: PyTorch forum, "Cross Entropy loss is not decreasing" (the reply that explains it)
https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16
Reported: the loss "does not decrease at all. It always stays the same equal to 2.30 ... So I check the
parameters of a model that has been stuck in the minima, turns out that they are almost all negative,
and their derivatives are all zero! ... negative parameters and ReLU activation"; the remedies given are
"Use a smaller learning rate" and "Use SGD optimizer instead of Adam". A short notebook run: a 3-hidden-
layer ReLU MLP, Adam, batch 128, 2 epochs (22 steps) on the 8x8 digits; the bug is Adam(lr=0.5) (the
thread gives no value: at this one the loss goes 2.3 -> thousands at step 2, then the ReLUs die and the
loss falls back to ~2.3), the fix the "smaller learning rate", Adam(lr=1e-2).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


@case(
    name="adam-lr-too-high-relus-die",
    source="https://discuss.pytorch.org/t/cross-entropy-loss-is-not-decreasing/43814/16",
    title="ReLU MLP, Adam(lr=0.5): loss 2.3 -> thousands, then a whole ReLU layer dead and loss ~ln(10)",
    expect="lr-too-high",
    verify=lambda bug, fixed: (
        bug["max_loss"] > 100
        and bug["max_dead"] > 0.95
        and abs(bug["last_loss"] - 2.3) < 0.3
        and fixed["val_acc"] > 0.85
    ),
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
        nn.Linear(32, 10),
    )  # fmt: skip
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5 if bug else 1e-2)
    with nb.watch(model, optimizer):
        epoch_loss = []
        for _epoch in range(2):
            for x, y in loader(xt, yt, batch_size=128):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                epoch_loss.append(loss.item())
    dead, h = [], xv
    with torch.no_grad():
        for layer in model[:-1]:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                dead.append((h.max(0).values == 0).float().mean().item())
    return {
        "max_loss": max(epoch_loss), "max_dead": max(dead), "last_loss": epoch_loss[-1],
        "val_acc": accuracy(model, xv, yv),
    }  # fmt: skip
