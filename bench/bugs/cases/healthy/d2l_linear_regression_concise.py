"""Dive into Deep Learning 3.5, Concise Implementation of Linear Regression: nn.LazyLinear(1) with weights
drawn from N(0, 0.01) and zero bias, nn.MSELoss, torch.optim.SGD lr=0.03, d2l.Trainer for 3 epochs on
SyntheticRegressionData(w=[2, -3.4], b=4.2, noise 0.01, batch 32), validation after every epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/linear-regression-concise.md
The book reports the estimation errors of w and b at ~1e-3. The optimizer is created inside
`trainer.fit` (model.configure_optimizers()), so a user watches the model alone: `nbdebug.watch(model)`
around `trainer.fit(model, data)`; its parameters are still lazy (uninitialized) when the watch starts.
Nothing is scaled: the program runs as written.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import D2LModule, D2LTrainer, tensor_loader


class LinearRegression(D2LModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.LazyLinear(1)
        self.net.weight.data.normal_(0, 0.01)
        self.net.bias.data.fill_(0)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fn = nn.MSELoss()
        return fn(y_hat, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), self.lr)


@case(
    name="healthy-d2l-linreg-concise-lazy",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/linear-regression-concise.md",
    title="d2l concise linear regression: LazyLinear, MSELoss, SGD lr=0.03 built inside trainer.fit",
    healthy=True,
    verify=lambda m: m["w_err"] < 0.05 and m["b_err"] < 0.05,
    quick=True,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    w_true, b_true = torch.tensor([2, -3.4]), 4.2
    n = 2000
    X = torch.randn(n, len(w_true))
    y = torch.matmul(X, w_true.reshape((-1, 1))) + b_true + torch.randn(n, 1) * 0.01
    model = LinearRegression(lr=0.03)
    trainer = D2LTrainer(max_epochs=3)
    with nb.watch(model):
        trainer.fit(
            model,
            tensor_loader((X[:1000], y[:1000]), 32, True),
            tensor_loader((X[1000:], y[1000:]), 32, False),
        )
    w, b = model.net.weight.data, model.net.bias.data
    return {"w_err": (w.reshape(-1) - w_true).abs().max().item(), "b_err": abs(b.item() - b_true)}
