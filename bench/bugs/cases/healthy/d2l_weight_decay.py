"""Dive into Deep Learning 3.7, Weight Decay (concise implementation): high-dimensional linear regression
(200 inputs, only 20 training examples, batch 5), LazyLinear(1) with MSELoss, and an SGD optimizer with
two parameter groups: {'params': net.weight, 'weight_decay': 3} and {'params': net.bias}, lr=0.01, 10
epochs, validation on 100 examples each epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/weight-decay.md
The book reports that with wd=3 the validation loss falls with the training loss instead of staying
flat (overfitting without decay). Tiny data (4 batches per epoch) and a heavy penalty are the point.
Nothing is scaled: the program runs as written. A user watches the model around `trainer.fit`.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import D2LModule, D2LTrainer, mean, tensor_loader


class WeightDecay(D2LModule):
    def __init__(self, wd: float, lr: float) -> None:
        super().__init__()
        self.lr, self.wd = lr, wd
        self.net = nn.LazyLinear(1)
        self.net.weight.data.normal_(0, 0.01)
        self.net.bias.data.fill_(0)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.MSELoss()(y_hat, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [{"params": self.net.weight, "weight_decay": self.wd}, {"params": self.net.bias}], lr=self.lr
        )


@case(
    name="healthy-d2l-weight-decay-param-groups",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/weight-decay.md",
    title="d2l weight decay: 20 examples x 200 features, SGD param groups (decay on weight only), batch 5",
    healthy=True,
    verify=lambda m: m["val_loss_last"] < 0.5 * m["val_loss_first"],
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    num_train, num_val, num_inputs, batch_size = 20, 100, 200, 5
    n = num_train + num_val
    X = torch.randn(n, num_inputs)
    noise = torch.randn(n, 1) * 0.01
    w, b = torch.ones((num_inputs, 1)) * 0.01, 0.05
    y = torch.matmul(X, w) + b + noise
    model = WeightDecay(wd=3, lr=0.01)
    val_losses: list[float] = []

    class Recording(D2LTrainer):
        def fit_epoch(self) -> None:
            super().fit_epoch()
            val_losses.append(mean(self.model.val_losses))

    trainer = Recording(max_epochs=10)
    with nb.watch(model):
        trainer.fit(
            model,
            tensor_loader((X[:num_train], y[:num_train]), batch_size, True),
            tensor_loader((X[num_train:], y[num_train:]), batch_size, False),
        )
    return {"val_loss_first": val_losses[0], "val_loss_last": val_losses[-1]}
