"""pytorch/examples mnist: Net (conv 32, conv 64, max_pool, Dropout 0.25, fc 128, Dropout 0.5, log_softmax),
F.nll_loss, Adadelta lr=1.0, StepLR(step_size=1, gamma=0.7) stepped after every epoch, `train()` under
model.train() then `test()` under model.eval() + no_grad each epoch.

Source: https://github.com/pytorch/examples/blob/main/mnist/main.py
The example reaches ~99% test accuracy; Adadelta's lr=1.0 is its default scale, and the first batches'
updates are large relative to the weights.
Scaled: 8x8 digits standardized (the example's Normalize((0.1307,), (0.3081,))), so fc1 takes 64*2*2
features instead of 9216; 14 epochs (the default) of 22 batches. Before training, the user runs
`nbdebug.check(model, first_batch, F.nll_loss)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.optim.lr_scheduler import StepLR

from ...data import digits_images, loader, split
from ...harness import case


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(64 * 2 * 2, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@case(
    name="healthy-ex-mnist-adadelta-steplr",
    source="https://github.com/pytorch/examples/blob/main/mnist/main.py",
    title="pytorch/examples MNIST CNN, Adadelta lr=1.0, StepLR per epoch, test pass each epoch",
    healthy=True,
    verify=lambda m: m["test_acc"] > 0.9,
    quick=True,
    category="pytorch-examples",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    train_loader = loader(xt, yt, batch_size=64, shuffle=True)
    test_loader = loader(xv, yv, batch_size=1000, shuffle=False)
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)

    def train(model, train_loader, optimizer, epoch: int) -> None:
        model.train()
        for data, target in train_loader:
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()

    def test(model, test_loader) -> tuple[float, float]:
        model.eval()
        test_loss, correct = 0.0, 0
        with torch.no_grad():
            for data, target in test_loader:
                output = model(data)
                test_loss += F.nll_loss(output, target, reduction="sum").item()
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()
        n = len(test_loader.dataset)
        return test_loss / n, correct / n

    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    nb.check(model, next(iter(train_loader)), F.nll_loss)
    with nb.watch(model, optimizer):
        for epoch in range(1, 15):
            train(model, train_loader, optimizer, epoch)
            test_loss, acc = test(model, test_loader)
            scheduler.step()
    return {"test_loss": test_loss, "test_acc": acc}
