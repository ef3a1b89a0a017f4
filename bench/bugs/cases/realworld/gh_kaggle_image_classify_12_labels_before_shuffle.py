"""A Lightning-style image dataset that shuffles its table after it has already read the label column.

Source: Borda/kaggle_image-classify pull request #12, "fix dataset shuffle"
(https://github.com/Borda/kaggle_image-classify/pull/12): "the shuffle was made after taking raw labels".
`PlantPathologyDataset.__init__` stored `self.raw_labels = list(self.data['labels'])`, then shuffled
`self.data = self.data.sample(frac=1, random_state=random_state)` and split it, while `_prepare_labels()` still
read the old `raw_labels`: image i got the label of another image. Fix: `raw_labels` becomes a property read
from the (shuffled) table.
Data: the digits as the "leaf images" with their label names, a plain list-of-rows table instead of pandas;
one-hot targets with BCEWithLogitsLoss, a small CNN instead of the ResNet, AdamW, batch 32, as in the repository's
multi-label setup.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...data import digits_images
from ...harness import case

NAMES = ["healthy", "scab", "rust", "frog_eye_leaf_spot", "powdery_mildew", "complex", "a", "b", "c", "d"]


class PlantPathologyDataset(torch.utils.data.Dataset):
    def __init__(
        self, table: list[dict], mode: str, bug: bool, split: float = 0.8, random_state: int = 42
    ) -> None:
        self.data = table
        if bug:
            self.raw_labels_early = [row["labels"] for row in self.data]
        self.bug = bug
        self.labels_unique = tuple(sorted({row["labels"] for row in table}))
        self.labels_lut = {lb: i for i, lb in enumerate(self.labels_unique)}
        # shuffle data
        perm = np.random.RandomState(random_state).permutation(len(self.data))
        self.data = [self.data[i] for i in perm]
        # split dataset
        frac = int(split * len(self.data))
        self.data = self.data[:frac] if mode == "train" else self.data[frac:]
        self.images = [row["image"] for row in self.data]
        self.labels = self._prepare_labels()

    @property
    def raw_labels(self) -> list[str]:
        return self.raw_labels_early if self.bug else [row["labels"] for row in self.data]

    def _prepare_labels(self) -> list[torch.Tensor]:
        return [torch.tensor(self.to_onehot_encoding(lb), dtype=torch.float32) for lb in self.raw_labels]

    def to_onehot_encoding(self, labels: str) -> tuple:
        one_hot = [0] * len(self.labels_unique)
        for lb in labels.split(" "):
            one_hot[self.labels_lut[lb]] = 1
        return tuple(one_hot)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[idx], self.labels[idx]

    def __len__(self) -> int:
        return len(self.data)


@case(
    name="rw-labels-misaligned-shuffled-after-reading-labels",
    source="https://github.com/Borda/kaggle_image-classify/pull/12",
    title="dataset reads its label column, then shuffles the image table: every image gets another's label",
    expect="labels-misaligned",
    verify=lambda bug, fixed: bug["val_acc"] < 0.25 and fixed["val_acc"] > 0.85,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits_images()
    table = [{"image": x[i], "labels": NAMES[int(y[i])]} for i in range(len(x))]
    train_ds = PlantPathologyDataset(table, "train", bug)
    valid_ds = PlantPathologyDataset(table, "valid", bug)
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=32, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, len(train_ds.labels_unique)),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train()
            for imgs, labels in train_loader:
                optimizer.zero_grad()
                loss = loss_fn(model(imgs), labels)
                loss.backward()
                optimizer.step()
    model.eval()
    xv = torch.stack([valid_ds[i][0] for i in range(len(valid_ds))])
    yv = torch.stack([valid_ds[i][1] for i in range(len(valid_ds))])
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv.argmax(1)).float().mean().item()
    return {"val_acc": val_acc, "loss": loss.item()}
