"""Classifying an imbalanced dataset (Piotr Bialecki): the CIFAR-10 CNN with log_softmax and NLLLoss,
SGD lr=1e-3 momentum 0.9, batch 64, trained on a dataset whose first five classes keep only 10% of their
samples, once with a WeightedRandomSampler (weights = 1 / class count per sample, replacement=True) and
once with a weighted criterion, NLLLoss(weight=[10]*5 + [1]*5).

Source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/imbalanced_data_tutorial.py
The tutorial reports the mean per-class accuracy improving over plain training with either fix (~48% ->
~56%). The labels are skewed 10:1 on purpose, and the program already corrects for it.
Scaled: digits resized to 3x32x32 in [-1, 1] instead of CIFAR-10 (about 770 training images after the
reduction); 45 epochs (the tutorial runs 25 epochs of ~300 batches; these have 13).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.sampler import WeightedRandomSampler

from ...data import split
from ...harness import case
from ._common import resized_digits

nb_classes = 10


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


def _imbalanced() -> tuple[TensorDataset, tuple[torch.Tensor, torch.Tensor], np.ndarray]:
    (xt, yt), (xv, yv) = split(*resized_digits(32, channels=3))
    imbal_class_prop = np.hstack(([0.1] * 5, [1.0] * 5))
    train_targets = yt.numpy()
    idx = []
    for i in range(nb_classes):
        cls = np.where(train_targets == i)[0]
        idx.append(cls[: int(len(cls) * imbal_class_prop[i])])
    idx = np.hstack(idx)
    return TensorDataset(xt[idx], yt[idx]), (xv, yv), train_targets[idx]


def _run(nb, sampler: bool) -> dict[str, float]:
    train_dataset, (xv, yv), train_targets = _imbalanced()
    batch_size = 64
    if sampler:
        _, train_class_counts = np.unique(train_targets, return_counts=True)
        weights = 1.0 / train_class_counts
        samples_weights = torch.from_numpy(weights[train_targets])
        sampler_ = WeightedRandomSampler(
            weights=samples_weights, num_samples=len(samples_weights), replacement=True
        )
        train_loader = DataLoader(train_dataset, batch_size=batch_size, sampler=sampler_)
        criterion = nn.NLLLoss()
    else:
        train_loader = DataLoader(train_dataset, batch_size=batch_size, shuffle=True)
        weight = torch.cat((torch.tensor([10.0] * 5), torch.tensor([1.0] * 5)))
        criterion = nn.NLLLoss(weight=weight)
    model = Net()
    optimizer = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train(epoch: int) -> None:
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            output = model(data)
            loss = criterion(output, target)
            loss.backward()
            optimizer.step()

    with nb.watch(model, optimizer):
        for epoch in range(45):
            train(epoch)
    model.eval()
    with torch.no_grad():
        preds = model(xv).argmax(1)
    per_class = [(preds[yv == c] == c).float().mean().item() for c in range(nb_classes)]
    return {"mean_class_acc": float(np.mean(per_class)), "minority_acc": float(np.mean(per_class[:5]))}


def _ok(m: dict[str, float]) -> bool:
    return m["mean_class_acc"] > 0.5 and m["minority_acc"] > 0.3


@case(
    name="healthy-tut-imbalanced-weighted-sampler",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/imbalanced_data_tutorial.py",
    title="10:1 imbalanced classes rebalanced by a WeightedRandomSampler (1 / class count)",
    healthy=True,
    verify=_ok,
    category="pytorch-tutorials",
)
def weighted_sampler(bug: bool, nb) -> dict[str, float]:
    return _run(nb, sampler=True)


@case(
    name="healthy-tut-imbalanced-weighted-nllloss",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/imbalanced_data_tutorial.py",
    title="10:1 imbalanced classes with a weighted criterion, NLLLoss(weight=[10]*5 + [1]*5)",
    healthy=True,
    verify=_ok,
    category="pytorch-tutorials",
)
def weighted_loss(bug: bool, nb) -> dict[str, float]:
    return _run(nb, sampler=False)
