"""pytorch-DANN's source-only training: the classifier returns F.softmax(x) into nn.CrossEntropyLoss.

Source: NaJaeMin92/pytorch-DANN issue #7, "Regarding softmax layer"
https://github.com/NaJaeMin92/pytorch-DANN/issues/7
Reported: "The softmax layer makes models hard to train ... try to remove the last softmax layer in
Classifier and Discriminator." The maintainer agreed (CrossEntropyLoss already applies LogSoftmax) and
removed it. The program is the repo's `source_only` loop (model.py/train.py): the Extractor/Classifier
CNN, SGD(lr=0.01, momentum=0.9) rebuilt every batch with the repo's lr annealing, batch 32; MNIST is
swapped for the 8x8 digits (made 3-channel with torch.cat, as the repo does for MNIST), 12 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class Extractor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extractor = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 48, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x).view(-1, 48 * 2 * 2)


class Classifier(nn.Module):
    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.softmax = softmax
        self.classifier = nn.Sequential(
            nn.Linear(48 * 2 * 2, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.classifier(x)
        return F.softmax(x, dim=1) if self.softmax else x


@case(
    name="softmax-ce-dann-source-only",
    source="https://github.com/NaJaeMin92/pytorch-DANN/issues/7",
    title="DANN source-only CNN whose classifier ends in F.softmax, trained with CrossEntropyLoss",
    expect="softmax-before-ce",
    verify=lambda bug, fixed: (
        bug["epoch_loss"] > 2.29 and bug["val_acc"] < 0.2 and fixed["val_acc"] > bug["val_acc"] + 0.2
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    encoder, classifier = Extractor(), Classifier(softmax=bug)
    model = nn.Sequential(encoder, classifier)
    criterion = nn.CrossEntropyLoss()
    epochs, dl = 12, loader(xt, yt, batch_size=32)
    total_steps = epochs * len(dl)
    with nb.watch(model):
        for epoch in range(epochs):
            losses = []
            encoder.train()
            classifier.train()
            for batch_idx, (image, label) in enumerate(dl):
                p = float(batch_idx + epoch * len(dl)) / total_steps
                image = torch.cat((image, image, image), 1)
                optimizer = torch.optim.SGD(
                    list(encoder.parameters()) + list(classifier.parameters()), lr=0.01, momentum=0.9
                )
                for group in optimizer.param_groups:  # utils.optimizer_scheduler
                    group["lr"] = 0.01 / (1.0 + 10 * p) ** 0.75
                optimizer.zero_grad()
                class_loss = criterion(classifier(encoder(image)), label)
                class_loss.backward()
                optimizer.step()
                losses.append(class_loss.item())
    model.eval()
    with torch.no_grad():
        acc = (model(torch.cat((xv, xv, xv), 1)).argmax(1) == yv).float().mean().item()
    return {"val_acc": acc, "epoch_loss": sum(losses) / len(losses)}
