"""Fine-tuning on a dataset stored class by class (torchvision's FGVCAircraft) with an unshuffled DataLoader.

Source: pytorch/vision issue #7818, "AirCraft dataset samples are organized sequentially, which causes much
Worse/biased performance unless Dataloader is shuffled" (https://github.com/pytorch/vision/issues/7818). The
maintainer: "It is expected that the datasets aren't shuffled by default ... Where shuffling matters i.e. during
training jobs, the Dataloader should be used and it shuffles by default" - with `shuffle=True`, which the
reporter's training loader lacked (the DataLoader's default is False).
Data: a small CNN pre-trained on other digits stands in for the ImageNet backbone, fine-tuned on digits 5-9
stored class by class; SGD(lr=0.01, momentum=0.9), batch 32, 3 epochs (the issue does not give its recipe).
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import new_task_digits, pretrained_cnn


@case(
    name="rw-unshuffled-sequential-dataset-finetune",
    source="https://github.com/pytorch/vision/issues/7818",
    title="fine-tuning on a dataset ordered class by class with DataLoader(shuffle=False): biased model",
    expect="unshuffled-data",
    verify=lambda bug, fixed: fixed["val_acc"] > 0.85 and bug["val_acc"] < fixed["val_acc"] - 0.15,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    xt, yt, xv, yv = new_task_digits()
    order = torch.argsort(
        yt, stable=True
    )  # the dataset's own order: all images of class 0, then class 1, ...
    dataset = torch.utils.data.TensorDataset(xt[order], yt[order])
    train_loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=not bug)
    model = pretrained_cnn()
    model.fc = nn.Linear(model.fc.in_features, 5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(3):
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
        "val_acc": (pred == yv).float().mean().item(),
        "last_class_share": (pred == 4).float().mean().item(),
        "loss": loss.item(),
    }
