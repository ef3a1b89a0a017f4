"""Healthy: yunjey/pytorch-tutorial's feedforward network with a shuffled training DataLoader.

Source: yunjey/pytorch-tutorial, tutorials/01-basics/feedforward_neural_network/main.py
(https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/01-basics/feedforward_neural_network/main.py):
`DataLoader(dataset=train_dataset, batch_size=100, shuffle=True)`, a 784-500-10 MLP, CrossEntropyLoss, Adam
lr=0.001. Shuffled data, aligned labels: nbdebug must stay silent.
Data: the digits (64 inputs) with the training set stored class by class, as a downloaded dataset often is;
the loader's shuffle=True takes care of it. 5 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, split
from ...harness import case


@case(
    name="rw-healthy-shuffled-loader-class-sorted-data",
    source="https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/01-basics/feedforward_neural_network/main.py",
    title="feedforward MLP; class-sorted training set read through DataLoader(shuffle=True)",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.9,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    order = torch.argsort(yt, stable=True)
    train_dataset = torch.utils.data.TensorDataset(xt[order], yt[order])
    train_loader = torch.utils.data.DataLoader(dataset=train_dataset, batch_size=100, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 500), nn.ReLU(), nn.Linear(500, 10))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            for images, labels in train_loader:
                loss = criterion(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return {"val_acc": accuracy(model, xv, yv), "loss": loss.item()}
