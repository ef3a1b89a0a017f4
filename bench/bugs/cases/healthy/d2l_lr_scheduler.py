"""Dive into Deep Learning 12.11, Learning Rate Scheduling, cosine scheduler with warmup: the chapter's
LeNet with ReLU and max pooling, CrossEntropyLoss, SGD lr=0.3, batch 256, and
CosineScheduler(20, warmup_steps=5, base_lr=0.3, final_lr=0.01) applied once per epoch after the test
pass (`param_group["lr"] = scheduler(epoch)`); 30 epochs in the book.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_optimization/lr-scheduler.md
The book reports train accuracy ~0.9 and test accuracy ~0.9 with warmup. As written, scheduler(0) is the
warmup's starting value 0, so the second epoch runs at lr=0 (no update at all) before the warmup climbs
back to 0.3: a quirk of the chapter's code, not a problem to report.
Scaled: digits resized to 28x28 in [0, 1] instead of Fashion-MNIST; 20 epochs of 6 batches instead of
30 (the cosine reaches its final value at epoch 20).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import loader, split
from ...harness import case
from ._common import resized_digits


def net_fn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )  # fmt: skip


class CosineScheduler:
    def __init__(self, max_update, base_lr=0.01, final_lr=0, warmup_steps=0, warmup_begin_lr=0) -> None:
        self.base_lr_orig = base_lr
        self.max_update = max_update
        self.final_lr = final_lr
        self.warmup_steps = warmup_steps
        self.warmup_begin_lr = warmup_begin_lr
        self.max_steps = self.max_update - self.warmup_steps

    def get_warmup_lr(self, epoch: int) -> float:
        increase = (self.base_lr_orig - self.warmup_begin_lr) * float(epoch) / float(self.warmup_steps)
        return self.warmup_begin_lr + increase

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_steps:
            return self.get_warmup_lr(epoch)
        if epoch <= self.max_update:
            self.base_lr = (
                self.final_lr
                + (self.base_lr_orig - self.final_lr)
                * (1 + math.cos(math.pi * (epoch - self.warmup_steps) / self.max_steps))
                / 2
            )
        return self.base_lr


@case(
    name="healthy-d2l-cosine-warmup-per-epoch",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_optimization/lr-scheduler.md",
    title="d2l LeNet (ReLU), SGD lr=0.3, cosine schedule with 5 warmup epochs set by hand once per epoch",
    healthy=True,
    verify=lambda m: m["test_acc"] > 0.85,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(28, unit=True))
    train_iter = loader(xt, yt, batch_size=256, shuffle=True)
    test_iter = loader(xv, yv, batch_size=256, shuffle=False)
    loss = nn.CrossEntropyLoss()
    net = net_fn()
    trainer = torch.optim.SGD(net.parameters(), lr=0.3)
    scheduler = CosineScheduler(20, warmup_steps=5, base_lr=0.3, final_lr=0.01)

    def evaluate_accuracy(net: nn.Module) -> float:
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for X, y in test_iter:
                correct += (net(X).argmax(1) == y).sum().item()
                total += y.numel()
        return correct / total

    with nb.watch(net, trainer):
        for epoch in range(20):
            for X, y in train_iter:
                net.train()
                trainer.zero_grad()
                y_hat = net(X)
                l = loss(y_hat, y)  # noqa: E741 (the book's name)
                l.backward()
                trainer.step()
            test_acc = evaluate_accuracy(net)
            for param_group in trainer.param_groups:
                param_group["lr"] = scheduler(epoch)
    return {"test_acc": test_acc, "train_loss": l.item()}
