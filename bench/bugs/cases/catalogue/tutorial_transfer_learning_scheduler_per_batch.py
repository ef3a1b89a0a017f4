"""The transfer-learning tutorial's loop with exp_lr_scheduler.step() called per batch instead of per epoch.

Source: pytorch/tutorials pull request #640, "Update transfer_learning_tutorial.py"
https://github.com/pytorch/tutorials/pull/640 ("scheduler.step() per epoch not per batch", merged).
StepLR(step_size=7, gamma=0.1) is meant to divide the learning rate by 10 every 7 *epochs*; stepped every
batch (batch size 4) it divides it by 10 every 7 *batches*, and within two epochs the rate is ~1e-100.
The loop keeps the tutorial's SGD(lr=0.001, momentum=0.9), batch size 4, train/val phases with
model.train()/model.eval(); the pretrained ResNet-18 on hymenoptera is replaced by a small CNN on the 8x8
digits, trained for 2 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


@case(
    name="steplr-stepped-per-batch-transfer-tutorial",
    source="https://github.com/pytorch/tutorials/pull/640",
    title="StepLR(step_size=7, gamma=0.1) stepped every batch of 4: the learning rate collapses to ~1e-100",
    expect=("lr-too-low", "lr-schedule-collapse"),
    verify=lambda bug, fixed: bug["final_lr"] < 1e-30 and bug["val_acc"] < fixed["val_acc"] - 0.3,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10),
    )  # fmt: skip
    criterion = nn.CrossEntropyLoss()
    optimizer_ft = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    exp_lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer_ft, step_size=7, gamma=0.1)
    with nb.watch(model, optimizer_ft):
        for _epoch in range(2):
            for phase in ["train", "val"]:
                model.train() if phase == "train" else model.eval()
                x_all, y_all = (xt, yt) if phase == "train" else (xv, yv)
                corrects = 0
                for inputs, labels in loader(x_all, y_all, batch_size=4, shuffle=phase == "train"):
                    optimizer_ft.zero_grad()
                    with torch.set_grad_enabled(phase == "train"):
                        outputs = model(inputs)
                        loss = criterion(outputs, labels)
                        if phase == "train":
                            loss.backward()
                            optimizer_ft.step()
                            if bug:
                                exp_lr_scheduler.step()
                    corrects += (outputs.argmax(1) == labels).sum().item()
                if phase == "train" and not bug:
                    exp_lr_scheduler.step()
            val_acc = corrects / len(yv)
    return {"val_acc": val_acc, "final_lr": optimizer_ft.param_groups[0]["lr"]}
