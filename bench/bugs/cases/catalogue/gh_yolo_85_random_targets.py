"""A Dataset whose __getitem__ returns the targets of a random other example on every read: the network
cannot even overfit 20 examples, and full training stays at chance.

Source: MultimediaTechLab/YOLO issue #85, "Dataloader is broken. It doesn't work when shuffle is True."
https://github.com/MultimediaTechLab/YOLO/issues/85
Reported: "When shuffle is set to True dataloader generates random target data" - the targets a batch
carries do not belong to its images (the reporter compares the batch's targets with the dataset's own
record for the same image path). Fixed in the repo's data loader. Scaled down to classification: a
Dataset over the 8x8 digits whose __getitem__ pairs image i with the label of a randomly drawn example
(bug) or its own (fix). Two programs: nbdebug.overfit on the Dataset (what a user would run on
"cannot learn"), with the program's own 20-example overfit as the check; and an ordinary training loop.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, split
from ...harness import case


class DigitDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, broken: bool) -> None:
        self.x, self.y, self.broken = x, y, broken

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(torch.randint(0, len(self.y), (1,))) if self.broken else i
        return self.x[i], self.y[j]


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )  # fmt: skip


@case(
    name="random-target-dataset-overfit",
    source="https://github.com/MultimediaTechLab/YOLO/issues/85",
    title="nbdebug.overfit on a Dataset that returns a random label on every read",
    expect="cannot-overfit",
    verify=lambda bug, fixed: bug["overfit_loss"] > 1.0 and fixed["overfit_loss"] < 0.05,
    quick=True,
    category="data",
)
def overfit(bug: bool, nb) -> dict[str, float]:
    (xt, yt), _ = split(*digits_images())
    dataset = DigitDataset(xt, yt, broken=bug)
    model = cnn()
    loss_fn = nn.CrossEntropyLoss()
    nb.overfit(model, dataset, loss_fn)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _step in range(150):  # the program's own check: fit 20 examples, re-reading them every step
        batch = [dataset[i] for i in range(20)]
        x, y = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return {"overfit_loss": loss.item()}


@case(
    name="random-target-dataset-training-loop",
    source="https://github.com/MultimediaTechLab/YOLO/issues/85",
    title="training loop over a Dataset that returns a random label on every read: accuracy stays at chance",
    expect="cannot-overfit",
    verify=lambda bug, fixed: bug["val_acc"] < 0.2 and fixed["val_acc"] > 0.9,
    category="data",
)
def training_loop(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    train_loader = torch.utils.data.DataLoader(DigitDataset(xt, yt, broken=bug), batch_size=32, shuffle=True)
    model = cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": acc}
