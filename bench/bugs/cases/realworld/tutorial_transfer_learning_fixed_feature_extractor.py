"""Healthy: the PyTorch transfer-learning tutorial's "ConvNet as fixed feature extractor".

Source: PyTorch tutorial "Transfer Learning for Computer Vision"
(https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html). Every backbone parameter gets
`requires_grad = False`, a new `model_conv.fc` is trained alone with
`optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)`, batch size 4, and `StepLR(step_size=7,
gamma=0.1)` stepped once per epoch. The frozen backbone and the head-only optimizer are on purpose: nbdebug
must stay silent.
Data: a small CNN pre-trained on other digits stands in for the ImageNet ResNet-18; the new task is digits 5-9 among examples it was not
pre-trained on.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...harness import case
from ._common import new_task_digits, pretrained_cnn


@case(
    name="rw-healthy-frozen-backbone-head-only",
    source="https://pytorch.org/tutorials/beginner/transfer_learning_tutorial.html",
    title="transfer-learning tutorial: frozen backbone on purpose, only the new fc in the optimizer",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.8,
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    xt, yt, xv, yv = new_task_digits()
    model_conv = pretrained_cnn()
    for param in model_conv.parameters():
        param.requires_grad = False
    num_ftrs = model_conv.fc.in_features
    model_conv.fc = nn.Linear(num_ftrs, 5)
    criterion = nn.CrossEntropyLoss()
    optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)
    exp_lr_scheduler = optim.lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)
    with nb.watch(model_conv, optimizer_conv):
        for _epoch in range(6):
            model_conv.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 4):
                idx = perm[i : i + 4]
                optimizer_conv.zero_grad()
                loss = criterion(model_conv(xt[idx]), yt[idx])
                loss.backward()
                optimizer_conv.step()
            exp_lr_scheduler.step()
    model_conv.eval()
    with torch.no_grad():
        val_acc = (model_conv(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "loss": loss.item()}
