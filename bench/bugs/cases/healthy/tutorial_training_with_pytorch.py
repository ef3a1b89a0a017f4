"""The "Training with PyTorch" (Introduction to PyTorch on YouTube) loop: GarmentClassifier (a LeNet-5
variant), SGD lr=0.001 momentum 0.9, batch size 4, `train_one_epoch()` then a validation pass under
model.eval() + torch.no_grad() every epoch, and model.train(True) again at the next epoch.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/introyt/trainingyt.py
The tutorial reports the per-batch training loss and the validation loss both falling epoch after epoch.
Scaled: digits resized to 1x28x28 and normalized to [-1, 1] instead of Fashion-MNIST; 5 epochs as in the
tutorial; the running loss is averaged every 50 batches instead of every 1000.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import loader, split
from ...harness import case
from ._common import resized_digits


class GarmentClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@case(
    name="healthy-tut-trainingyt-val-each-epoch",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/introyt/trainingyt.py",
    title="LeNet-5 variant, batch size 4, validation under eval() + no_grad() after every epoch",
    healthy=True,
    verify=lambda m: m["last_vloss"] < 0.5 * m["first_vloss"] and m["last_loss"] < 1.0,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(28))
    training_loader = loader(xt, yt, batch_size=4, shuffle=True)
    validation_loader = loader(xv, yv, batch_size=4, shuffle=False)
    model = GarmentClassifier()
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)

    def train_one_epoch() -> float:
        running_loss = last_loss = 0.0
        for i, data in enumerate(training_loader):
            inputs, labels = data
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = loss_fn(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            if i % 50 == 49:
                last_loss = running_loss / 50
                running_loss = 0.0
        return last_loss

    vlosses, losses = [], []
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train(True)
            losses.append(train_one_epoch())
            running_vloss = 0.0
            model.eval()
            with torch.no_grad():
                for i, vdata in enumerate(validation_loader):  # noqa: B007 (i is read after the loop)
                    vinputs, vlabels = vdata
                    voutputs = model(vinputs)
                    vloss = loss_fn(voutputs, vlabels)
                    running_vloss += vloss
            vlosses.append(float(running_vloss / (i + 1)))
    # the untrained validation loss is ln(10); the tutorial's first epoch already falls well below it
    return {"first_vloss": 2.3026, "last_vloss": vlosses[-1], "last_loss": losses[-1]}
