"""The PyTorch quickstart's train()/test() loop, whose test() calls model.eval() and whose train() never
calls model.train(): from the second epoch on, a model with BatchNorm trains in eval mode.

Source: pytorch/tutorials issue #1624, "[quickstart_tutorial] why model.eval() in not turn off at
training stage" https://github.com/pytorch/tutorials/issues/1624 (fixed by pull request #1602,
"call model.train() before training": "Because the model.eval() is called inside the test() function,
the model trains in eval mode after the first epoch ... A lot of people (myself included) copy code from
this tutorial"). The tutorial's own MLP has no BatchNorm/Dropout, so it is unaffected; the program is the
copied loop (train(), test(), epochs loop, SGD, batch 64, 5 epochs) around a model that has them: a
10-layer MLP with BatchNorm on the 8x8 digits, SGD lr 0.1 (the tutorial's 1e-3 is for FashionMNIST's
938 steps per epoch; the digits give 22).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


def make_model(depth: int = 10, width: int = 64) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(64, width), nn.BatchNorm1d(width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU()]
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train(dataloader, model: nn.Module, loss_fn, optimizer, fixed: bool) -> None:
    if fixed:
        model.train()
    for X, y in dataloader:
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test(dataloader, model: nn.Module, loss_fn) -> tuple[float, float]:
    model.eval()
    test_loss, correct, size = 0.0, 0.0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
            size += len(y)
    return test_loss / len(dataloader), correct / size


@case(
    name="quickstart-loop-trains-in-eval-mode",
    source="https://github.com/pytorch/tutorials/issues/1624",
    title="quickstart train()/test() loop without model.train(): a BatchNorm MLP trains in eval mode from epoch 2",
    expect="eval-mode",
    verify=lambda bug, fixed: fixed["test_acc"] > bug["test_acc"] + 0.2,
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    train_dataloader, test_dataloader = (
        loader(xt, yt, batch_size=64),
        loader(xv, yv, batch_size=64, shuffle=False),
    )
    model = make_model()
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with nb.watch(model, optimizer):
        for _t in range(5):
            train(train_dataloader, model, loss_fn, optimizer, fixed=not bug)
            test_loss, correct = test(test_dataloader, model, loss_fn)
    return {"test_acc": correct, "test_loss": test_loss}
