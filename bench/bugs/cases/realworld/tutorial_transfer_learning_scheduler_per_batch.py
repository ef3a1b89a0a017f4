"""The transfer-learning tutorial's fine-tuning run with `exp_lr_scheduler.step()` inside the batch loop.

Source: pytorch/tutorials pull request #640, "Update transfer_learning_tutorial.py"
(https://github.com/pytorch/tutorials/pull/640): "scheduler.step() per epoch not per batch" (merged by soumith).
The tutorial fine-tunes the whole network with `optim.SGD(model_ft.parameters(), lr=0.001, momentum=0.9)` and
`lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)`, a decay meant per epoch; stepped after every batch
of 4 images, the learning rate is divided by 10 every 7 batches and is ~1e-13 after a hundred.
Data: a small CNN pre-trained on other digits stands in for the ImageNet ResNet-18; the ants/bees task is
digits 5-9 among examples it was not pre-trained on; batch size 4, 4 epochs.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...harness import case
from ._common import new_task_digits, pretrained_cnn


@case(
    name="rw-lr-schedule-steplr-per-batch-finetune",
    source="https://github.com/pytorch/tutorials/pull/640",
    title="fine-tuning with StepLR(step_size=7, gamma=0.1) stepped every batch: the LR collapses to ~0",
    expect="lr-schedule-collapse",
    first_effect=8,  # the LR first drops after the 7th batch
    verify=lambda bug, fixed: bug["final_lr"] < 1e-12 and fixed["val_acc"] > bug["val_acc"] + 0.1,
    quick=True,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    xt, yt, xv, yv = new_task_digits()
    model_ft = pretrained_cnn()
    model_ft.fc = nn.Linear(model_ft.fc.in_features, 5)
    criterion = nn.CrossEntropyLoss()
    optimizer_ft = optim.SGD(model_ft.parameters(), lr=0.001, momentum=0.9)
    exp_lr_scheduler = optim.lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
    with nb.watch(model_ft, optimizer_ft):
        for _epoch in range(4):
            model_ft.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 4):
                idx = perm[i : i + 4]
                optimizer_ft.zero_grad()
                loss = criterion(model_ft(xt[idx]), yt[idx])
                loss.backward()
                optimizer_ft.step()
                if bug:
                    exp_lr_scheduler.step()
            if not bug:
                exp_lr_scheduler.step()
    model_ft.eval()
    with torch.no_grad():
        val_acc = (model_ft(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "final_lr": optimizer_ft.param_groups[0]["lr"], "loss": loss.item()}
