"""The PyTorch "Quickstart" FashionMNIST classifier: a 512-512 ReLU MLP, plain SGD lr=1e-3, batch 64, a
`train()` pass then a `test()` pass (model.eval() + no_grad) every epoch.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/basics/quickstart_tutorial.py
The tutorial reports the loss falling slowly from 2.30 and ~64% test accuracy after 5 epochs ("we'd like
to see the accuracy increase and the loss decrease with every epoch"); slow, but healthy.
Scaled: digits (8x8 pixels in [0, 1], ToTensor's range) instead of 28x28 FashionMNIST; 40 epochs of 22
batches (880 steps) stand in for the tutorial's 5 epochs of 938 batches. Before training, the user runs
`nbdebug.check(model, first_batch, loss_fn)` as nbdebug's README suggests.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


class NeuralNetwork(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(8 * 8, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


@case(
    name="healthy-tut-quickstart-mlp-sgd",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/basics/quickstart_tutorial.py",
    title="Quickstart MLP, SGD lr=1e-3 without momentum, train() then test() each epoch: slow but learning",
    healthy=True,
    verify=lambda m: m["test_acc"] > 0.4 and m["first_test_acc"] < 0.3,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits(normalize=False)
    (xt, yt), (xv, yv) = split(x / 16.0, y)
    train_dataloader = loader(xt, yt, batch_size=64, shuffle=False)
    test_dataloader = loader(xv, yv, batch_size=64, shuffle=False)
    model = NeuralNetwork()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def train(dataloader, model, loss_fn, optimizer) -> None:
        model.train()
        for X, y in dataloader:
            pred = model(X)
            loss = loss_fn(pred, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    def test(dataloader, model, loss_fn) -> tuple[float, float]:
        size, num_batches = len(dataloader.dataset), len(dataloader)
        model.eval()
        test_loss, correct = 0.0, 0.0
        with torch.no_grad():
            for X, y in dataloader:
                pred = model(X)
                test_loss += loss_fn(pred, y).item()
                correct += (pred.argmax(1) == y).type(torch.float).sum().item()
        return test_loss / num_batches, correct / size

    accs = []
    nb.check(model, next(iter(train_dataloader)), loss_fn)
    with nb.watch(model, optimizer):
        for _t in range(40):
            train(train_dataloader, model, loss_fn, optimizer)
            test_loss, acc = test(test_dataloader, model, loss_fn)
            accs.append(acc)
    return {"first_test_acc": accs[0], "test_acc": accs[-1], "test_loss": test_loss}
