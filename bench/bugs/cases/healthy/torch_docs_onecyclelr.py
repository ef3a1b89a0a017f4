"""The torch.optim.lr_scheduler.OneCycleLR documentation example: SGD lr=0.1 momentum 0.9,
OneCycleLR(max_lr=0.01, steps_per_epoch=len(data_loader), epochs=10), and `scheduler.step()` after every
batch's `optimizer.step()` (the docs: "step should be called after a batch has been used for training").

Source: https://docs.pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html
The 1cycle policy starts at max_lr / 25, climbs to max_lr over the first 30% of the steps, then anneals to
max_lr / 25e4, cycling the momentum between 0.95 and 0.85 the other way; the first and last steps are tiny.
The example leaves the model and `train_batch(...)` to the reader: here the quickstart's MLP (two hidden
layers of 512) on digits, batch 64, with CrossEntropyLoss.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


@case(
    name="healthy-docs-onecyclelr-per-batch",
    source="https://docs.pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html",
    title="OneCycleLR(max_lr=0.01) stepped after every batch, SGD momentum 0.9 (cycled 0.95 -> 0.85)",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.85,
    quick=True,
    category="other",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    data_loader = loader(xt, yt, batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, steps_per_epoch=len(data_loader), epochs=10
    )

    def train_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> float:
        x, y = batch
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss.item()

    with nb.watch(model, optimizer):
        for _epoch in range(10):
            for batch in data_loader:
                loss = train_batch(batch)
                optimizer.step()
                scheduler.step()
    return {"val_acc": accuracy(model, xv, yv), "loss": loss}
