"""The forum poster's train_step/val_step loop (one batch per call) with plain SGD at a learning rate
far too high: the loss jumps to thousands within a few steps, the gradient norm explodes, then the ReLU
layers die and the loss sinks back to ~2.3.

Source: PyTorch forum, "Learning rate causes validation loss to go high"
https://discuss.pytorch.org/t/learning-rate-causes-validation-loss-to-go-high/97057
Reported: "by increasing the learning from 0.01 to 0.02, the validation loss gets way too high (from 100
to even 1000), but after a couple of iterations (between 20 and 30), it descends to 2.0". The fix is a
lower learning rate. The loop keeps the post's train_step (model.train(), zero_grad, forward, loss,
backward, step, accuracy, `break` after one batch) and val_step (eval under no_grad, one batch);
GoogLeNet is replaced by a ReLU MLP on the 8x8 digits, SGD(momentum=0.9); the bug runs it at lr=3.0,
100x the rate this network trains well at (0.03, the fix).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


def train_step(model: nn.Module, criterion, data_set, optimizer) -> tuple[float, float]:
    model.train()
    for images, labels in data_set:
        optimizer.zero_grad()
        output = model(images)
        loss = criterion(output, labels)
        loss.backward()
        optimizer.step()
        total_acc = (output.argmax(1) == labels).float().mean().item()
        break
    return loss.item(), total_acc


def val_step(model: nn.Module, criterion, data_set) -> tuple[float, float]:
    with torch.no_grad():
        model.eval()
        for images, labels in data_set:
            output = model(images)
            loss = criterion(output, labels)
            total_acc = (output.argmax(1) == labels).float().mean().item()
            break
    return loss.item(), total_acc


@case(
    name="sgd-lr-100x-loss-explodes-then-relus-die",
    source="https://discuss.pytorch.org/t/learning-rate-causes-validation-loss-to-go-high/97057",
    title="SGD at 100x a working learning rate: loss 2.3 -> thousands in 5 steps, then dead ReLUs, loss ~2.3",
    expect="lr-too-high",
    verify=lambda bug, fixed: (
        bug["max_train_loss"] > 1000
        and bug["max_dead"] > 0.95
        and bug["val_acc"] < 0.2
        and fixed["val_acc"] > 0.85
    ),
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=3.0 if bug else 0.03, momentum=0.9)
    train_set, val_set = loader(xt, yt, batch_size=32), loader(xv, yv, batch_size=128)
    train_losses = []
    with nb.watch(model, optimizer):
        for _iteration in range(90):
            loss, _acc = train_step(model, criterion, train_set, optimizer)
            val_loss, _val_acc = val_step(model, criterion, val_set)
            train_losses.append(loss)
    dead, h = [], xv
    with torch.no_grad():
        for layer in model[:-1]:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                dead.append((h.max(0).values == 0).float().mean().item())
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"max_train_loss": max(train_losses), "val_loss": val_loss, "max_dead": max(dead), "val_acc": acc}
