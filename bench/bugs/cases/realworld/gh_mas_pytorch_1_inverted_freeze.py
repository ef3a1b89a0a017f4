"""MAS continual learning, task 1: a freezing helper that freezes the layers meant to train.

Source: wannabeOG/MAS-PyTorch issue #1, "Issue related to frozen layers"
(https://github.com/wannabeOG/MAS-PyTorch/issues/1). `create_freeze_layers(model, no_of_layers=2)` sets
`requires_grad = False` on every conv of the AlexNet feature extractor, then sets it back to True on the
convs it lists as `freeze_layers`: "the frozen layers are set to require gradient, in contrast, the not frozen
layers don't require gradient ... we actually train frozen layers and ignore the not frozen layers". The
optimizer (`local_sgd(model.tmodel.parameters(), reg_lambda, lr)`, plain SGD on task 1) holds all of them.
Fix (the reporter's): swap the two flags, so the listed layers are frozen and the last convs train.
Data: a five-conv AlexNet-like net on the digits; ImageNet pre-training is stood in for by a short
pre-training on digits 0-4 (not watched), task 1 is digits 5-9 with a new head; SGD lr=0.001, batch 32,
10 epochs (the repository's defaults).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images
from ...harness import case
from ._common import moved, snapshot


def alexnet_like(n_classes: int) -> nn.Module:
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    )  # fmt: skip
    m.classifier = nn.Sequential(
        nn.Dropout(), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(), nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, n_classes),
    )  # fmt: skip
    m.forward = lambda x: m.classifier(torch.flatten(m.features(x), 1))
    return m


class SharedModel(nn.Module):
    def __init__(self, tmodel: nn.Module) -> None:
        super().__init__()
        self.tmodel = tmodel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tmodel(x)


def create_freeze_layers(model: SharedModel, no_of_layers: int, bug: bool) -> list[str]:
    for param in model.tmodel.classifier.parameters():
        param.requires_grad = True
    for param in model.tmodel.features.parameters():
        param.requires_grad = not bug  # fix: everything trainable except the listed layers
    temp_list = [k for k, mod in model.tmodel.features._modules.items() if isinstance(mod, nn.Conv2d)]
    num_of_frozen_layers = len(temp_list) - no_of_layers
    freeze_layers = []
    for num in range(0, num_of_frozen_layers):
        temp_key = temp_list[num]
        for param in model.tmodel.features[int(temp_key)].parameters():
            param.requires_grad = bug  # the bug sets True here; the fix False
        freeze_layers += ["features." + temp_key + ".weight", "features." + temp_key + ".bias"]
    return freeze_layers


@case(
    name="rw-frozen-mas-inverted-freeze-helper",
    source="https://github.com/wannabeOG/MAS-PyTorch/issues/1",
    title="MAS task 1: the freezing helper freezes the last convs (meant to train) instead of the first ones",
    expect="frozen-by-accident",
    verify=lambda bug, fixed: (
        bug["last_convs_moved"] == 0.0
        and fixed["last_convs_moved"] > 1e-4
        and fixed["first_convs_moved"] == 0.0
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits_images()
    old, new = y < 5, y >= 5
    # stand-in for the ImageNet-pretrained AlexNet: a quick pre-training on digits 0-4 (not watched)
    tmodel = alexnet_like(5)
    pre = torch.optim.Adam(tmodel.parameters(), lr=1e-3)
    for _ in range(3):
        for i in range(0, int(old.sum()), 32):
            pre.zero_grad()
            nn.functional.cross_entropy(tmodel(x[old][i : i + 32]), y[old][i : i + 32]).backward()
            pre.step()
    # task 1: digits 5-9 with a new last layer
    tmodel.classifier[-1] = nn.Linear(64, 5)
    model = SharedModel(tmodel)
    xt, yt = x[new][:700], y[new][:700] - 5
    xv, yv = x[new][700:], y[new][700:] - 5
    create_freeze_layers(model, no_of_layers=2, bug=bug)
    convs = [m for m in model.tmodel.features if isinstance(m, nn.Conv2d)]
    first_before, last_before = snapshot(*convs[:3]), snapshot(*convs[3:])
    optimizer = torch.optim.SGD(model.tmodel.parameters(), lr=0.001)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(10):  # num_epochs=10 (main.py default)
            model.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 32):
                idx = perm[i : i + 32]
                optimizer.zero_grad()
                loss = criterion(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {
        "val_acc": val_acc,
        "first_convs_moved": moved(first_before, *convs[:3]),
        "last_convs_moved": moved(last_before, *convs[3:]),
        "loss": loss.item(),
    }
