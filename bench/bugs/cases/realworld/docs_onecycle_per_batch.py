"""Healthy: OneCycleLR stepped after every batch, as its documentation prescribes.

Source: PyTorch docs, torch.optim.lr_scheduler.OneCycleLR
(https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html): "The 1cycle learning rate
policy changes the learning rate after every batch. step should be called after a batch has been used for
training." The documented example: `optim.SGD(model.parameters(), lr=0.1, momentum=0.9)`,
`OneCycleLR(optimizer, max_lr=0.01, steps_per_epoch=len(data_loader), epochs=10)`, `scheduler.step()` inside the
batch loop. By design the LR ends ~1e5 times below its peak: nbdebug must stay silent.
Data: the digits; an MLP classifier, batch 64, 10 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


@case(
    name="rw-healthy-onecycle-per-batch",
    source="https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html",
    title="OneCycleLR(max_lr=0.01, steps_per_epoch, epochs=10) stepped after every batch, by design",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.9 and m["final_lr"] < 1e-5,
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    data_loader = loader(xt, yt, batch_size=64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.01, steps_per_epoch=len(data_loader), epochs=10
    )
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(10):
            for x, y in data_loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                scheduler.step()
    return {
        "val_acc": accuracy(model, xv, yv),
        "final_lr": optimizer.param_groups[0]["lr"],
        "loss": loss.item(),
    }
