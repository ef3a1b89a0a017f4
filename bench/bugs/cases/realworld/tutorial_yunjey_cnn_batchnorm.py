"""Healthy: yunjey/pytorch-tutorial's CNN with BatchNorm2d trained at batch size 100.

Source: yunjey/pytorch-tutorial, tutorials/02-intermediate/convolutional_neural_network/main.py
(https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/02-intermediate/convolutional_neural_network/main.py):
two Conv-BatchNorm2d-ReLU-MaxPool blocks and a Linear, CrossEntropyLoss, Adam lr=0.001, batch size 100,
`model.eval()` for testing ("eval mode (batchnorm uses moving mean/variance instead of mini-batch
mean/variance)"). Batches large enough for BatchNorm: eval matches train, nbdebug must stay silent.
Data: the digits (8x8); 16/32 channels as in the tutorial, 5 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class ConvNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5, stride=1, padding=2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.fc = nn.Linear(2 * 2 * 32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer2(self.layer1(x))
        return self.fc(out.reshape(out.size(0), -1))


@case(
    name="rw-healthy-cnn-batchnorm-batch-100",
    source="https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/02-intermediate/convolutional_neural_network/main.py",
    title="CNN with BatchNorm2d at batch size 100; eval-mode accuracy matches train-mode accuracy",
    healthy=True,
    verify=lambda m: m["eval_acc"] > 0.9 and m["eval_acc"] > m["train_mode_acc"] - 0.03,
    category="eval",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = ConvNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train()
            for images, labels in loader(xt, yt, batch_size=100):
                loss = criterion(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        train_mode_acc = (model(xv).argmax(1) == yv).float().mean().item()  # batch statistics
        model.eval()
        eval_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"eval_acc": eval_acc, "train_mode_acc": train_mode_acc, "loss": loss.item()}
