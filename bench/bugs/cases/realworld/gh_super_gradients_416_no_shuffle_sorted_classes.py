"""Image classification where the training DataLoader keeps the class-sorted dataset order (no shuffle).

Source: Deci-AI/super-gradients issue #416, "Default dataloader params have shuffle=False"
(https://github.com/Deci-AI/super-gradients/issues/416): "By default, it does not pass shuffle=True to the
dataloader, so SequentialSampler gets instantiated. In training on Imagenet it makes NN see only examples of a
single class which quickly throws it out of the minima. Passing shuffle=True to the dataloader params solves
the issue." The reporter's recipe: SGD(lr=0.001, momentum=0.9, nesterov=True, weight_decay=1e-4),
cross-entropy, batch size 196.
Data: the digits sorted by label (as an ImageFolder dataset is) instead of ImageNet; a small CNN stands in for
the ResNet; one epoch as in the report, batch 16.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits_images, split
from ...harness import case


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 10),
    )  # fmt: skip


@case(
    name="rw-unshuffled-class-sorted-imagenet-style",
    source="https://github.com/Deci-AI/super-gradients/issues/416",
    title="classifier trained on a class-sorted dataset with the DataLoader's default shuffle=False",
    expect="unshuffled-data",
    verify=lambda bug, fixed: (
        fixed["val_acc"] > 0.85 and bug["val_acc"] < fixed["val_acc"] - 0.3 and bug["last_class_share"] > 0.3
    ),
    quick=True,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    order = torch.argsort(yt, stable=True)  # the dataset lists class 0's images, then class 1's, ...
    train_ds = torch.utils.data.TensorDataset(xt[order], yt[order])
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=16, shuffle=not bug)
    model = cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, nesterov=True, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(1):  # max_epochs=1, as in the report
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        pred = model(xv).argmax(1)
    return {
        "val_acc": accuracy(model, xv, yv),
        "last_class_share": (pred == 9).float().mean().item(),  # share of validation predictions = last class
        "loss": loss.item(),
    }
