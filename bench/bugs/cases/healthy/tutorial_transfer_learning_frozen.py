"""Transfer Learning for Computer Vision, "ConvNet as fixed feature extractor": a pretrained ResNet with
every parameter frozen (`requires_grad = False`), a new `fc` layer, SGD(model_conv.fc.parameters(),
lr=0.001, momentum=0.9), StepLR(step_size=7, gamma=0.1) stepped once per epoch, and `train_model()`:
each epoch a 'train' phase (model.train()) and a 'val' phase (model.eval()), both under
`torch.set_grad_enabled(phase == 'train')`, with `optimizer.zero_grad()` in both phases.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/transfer_learning_tutorial.py
The tutorial reports ~95% validation accuracy on ants vs bees; the frozen backbone gets no gradient, by
design, and its BatchNorm statistics still update in train mode.
Scaled: a resnet18-shaped TinyResNet "pretrained" on digits 0-7 stands in for the ImageNet weights, and
digits 8 vs 9 (250 train, ~100 val images) for ants vs bees; batch size 4 as in the tutorial, 10 epochs
instead of 25. Before training, the user runs `nbdebug.check(model_conv, first_batch, criterion)`.
"""

from __future__ import annotations

import torch
from torch import nn, optim
from torch.optim import lr_scheduler

from ...data import loader
from ...harness import case
from ._common import pretrained_tiny_resnet, two_class_digits


@case(
    name="healthy-tut-transfer-frozen-backbone",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/transfer_learning_tutorial.py",
    title="Frozen pretrained ResNet, only the new fc in the optimizer, StepLR per epoch, train/val phases",
    healthy=True,
    verify=lambda m: m["best_acc"] > 0.9,
    quick=True,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = two_class_digits()
    dataloaders = {"train": loader(xt, yt, batch_size=4, shuffle=True), "val": loader(xv, yv, batch_size=4)}
    dataset_sizes = {"train": len(xt), "val": len(xv)}
    model_conv = pretrained_tiny_resnet()
    for param in model_conv.parameters():
        param.requires_grad = False
    num_ftrs = model_conv.fc.in_features
    model_conv.fc = nn.Linear(num_ftrs, 2)
    criterion = nn.CrossEntropyLoss()
    optimizer_conv = optim.SGD(model_conv.fc.parameters(), lr=0.001, momentum=0.9)
    exp_lr_scheduler = lr_scheduler.StepLR(optimizer_conv, step_size=7, gamma=0.1)

    def train_model(model, criterion, optimizer, scheduler, num_epochs: int) -> dict[str, float]:
        best_acc = 0.0
        for _epoch in range(num_epochs):
            for phase in ["train", "val"]:
                if phase == "train":
                    model.train()
                else:
                    model.eval()
                running_loss, running_corrects = 0.0, 0
                for inputs, labels in dataloaders[phase]:
                    optimizer.zero_grad()
                    with torch.set_grad_enabled(phase == "train"):
                        outputs = model(inputs)
                        _, preds = torch.max(outputs, 1)
                        loss = criterion(outputs, labels)
                        if phase == "train":
                            loss.backward()
                            optimizer.step()
                    running_loss += loss.item() * inputs.size(0)
                    running_corrects += torch.sum(preds == labels.data)
                if phase == "train":
                    scheduler.step()
                epoch_acc = running_corrects.double() / dataset_sizes[phase]
                if phase == "val" and epoch_acc > best_acc:
                    best_acc = float(epoch_acc)
        return {"best_acc": best_acc, "last_val_acc": float(epoch_acc)}

    nb.check(model_conv, next(iter(dataloaders["train"])), criterion)
    with nb.watch(model_conv, optimizer_conv):
        return train_model(model_conv, criterion, optimizer_conv, exp_lr_scheduler, num_epochs=10)
