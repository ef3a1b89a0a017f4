"""d2l.ai "Dropout from scratch": the `is_training` flag stays True, so test accuracy is taken with dropout on.

Source: d2l-ai/d2l-en issue #1093, "test accuracy is evaluated with dropout"
(https://github.com/d2l-ai/d2l-en/issues/1093): "In the torch code in section 4.6.4.2, an instance variable
`is_training` is defined, but is kept constant during training, so the test accuracy is evaluated with dropout
enabled which is probably not intended. There is an instance variable `training` inherited from `nn.Module`
(used by the `nn.Dropout` layer) that could be used instead." Fixed in #1110 (`if self.training == True`).
Data: the digits (64 inputs) instead of Fashion-MNIST; the book's dropout_layer, Net(784->256->256->10 scaled
to 64 inputs) with dropout1=0.2, dropout2=0.5, CrossEntropyLoss, SGD lr=0.5, batch 256, 10 epochs, and
evaluation after `net.eval()` as in d2l.train_ch3.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


def dropout_layer(X: torch.Tensor, dropout: float) -> torch.Tensor:
    assert 0 <= dropout <= 1
    if dropout == 1:
        return torch.zeros_like(X)
    if dropout == 0:
        return X
    mask = (torch.rand(X.shape) > dropout).float()
    return mask * X / (1.0 - dropout)


dropout1, dropout2 = 0.2, 0.5


class Net(nn.Module):
    def __init__(self, num_inputs: int, num_outputs: int, num_hiddens1: int, num_hiddens2: int, bug: bool,
                 is_training: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.num_inputs = num_inputs
        self.is_training = is_training
        self.bug = bug
        self.lin1 = nn.Linear(num_inputs, num_hiddens1)
        self.lin2 = nn.Linear(num_hiddens1, num_hiddens2)
        self.lin3 = nn.Linear(num_hiddens2, num_outputs)
        self.relu = nn.ReLU()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        use_dropout = self.is_training if self.bug else self.training
        H1 = self.relu(self.lin1(X.reshape((-1, self.num_inputs))))
        if use_dropout:
            H1 = dropout_layer(H1, dropout1)
        H2 = self.relu(self.lin2(H1))
        if use_dropout:
            H2 = dropout_layer(H2, dropout2)
        return self.lin3(H2)


@case(
    name="rw-dropout-scratch-flag-always-training",
    source="https://github.com/d2l-ai/d2l-en/issues/1093",
    title="d2l dropout from scratch: a constant is_training flag keeps dropout on during evaluation",
    expect="dropout-active-in-eval",
    verify=lambda bug, fixed: bug["eval_disagreement"] > 0.01 and fixed["eval_disagreement"] == 0.0,
    category="eval",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    net = Net(64, 10, 256, 256, bug=bug)
    loss = nn.CrossEntropyLoss()
    trainer = torch.optim.SGD(net.parameters(), lr=0.5)
    with nb.watch(net, trainer):
        for _epoch in range(10):
            net.train()
            for X, y in loader(xt, yt, batch_size=256):
                trainer.zero_grad()
                l = loss(net(X), y)  # noqa: E741 - the book's name
                l.backward()
                trainer.step()
            net.eval()
            with torch.no_grad():
                pred1, pred2 = net(xv).argmax(1), net(xv).argmax(1)
    return {
        "val_acc": (pred1 == yv).float().mean().item(),
        "eval_disagreement": (pred1 != pred2).float().mean().item(),
        "loss": l.item(),
    }
