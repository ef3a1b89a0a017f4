"""The 60-minute blitz "Training a Classifier" CNN: conv(3,6,5)-pool-conv(6,16,5)-fc 120-84-10, SGD lr=0.001
momentum 0.9, batch size 4, 2 epochs, then the accuracy over the test set under no_grad.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/blitz/cifar10_tutorial.py
The tutorial reports the running loss falling from ~2.2 to ~1.3 and "waaay better than chance" test
accuracy (~55%); with batch size 4 the per-batch loss wiggles a lot, which the batch size explains.
Scaled: digits resized to 3x32x32 and normalized to [-1, 1] (the tutorial's Normalize(0.5, 0.5)) instead
of CIFAR-10; 2 epochs of 350 batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import loader, split
from ...harness import case
from ._common import resized_digits


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
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@case(
    name="healthy-tut-cifar10-cnn-batch4",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/blitz/cifar10_tutorial.py",
    title="Blitz CIFAR-10 CNN, SGD momentum, batch size 4, 2 epochs: a noisy per-batch loss that falls",
    healthy=True,
    verify=lambda m: m["test_acc"] > 0.6 and m["last_running_loss"] < 0.6 * m["first_running_loss"],
    quick=True,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(32, channels=3))
    trainloader = loader(xt, yt, batch_size=4, shuffle=True)
    testloader = loader(xv, yv, batch_size=4, shuffle=False)
    net = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.001, momentum=0.9)
    running = []
    with nb.watch(net, optimizer):
        for _epoch in range(2):
            running_loss = 0.0
            for i, data in enumerate(trainloader, 0):
                inputs, labels = data
                optimizer.zero_grad()
                outputs = net(inputs)
                loss = criterion(outputs, labels)
                loss.backward()
                optimizer.step()
                running_loss += loss.item()
                if i % 50 == 49:  # the tutorial prints every 2000 of its 12500 mini-batches
                    running.append(running_loss / 50)
                    running_loss = 0.0
    correct = total = 0
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return {"first_running_loss": running[0], "last_running_loss": running[-1], "test_acc": correct / total}
