"""Dive into Deep Learning 3.4, Linear Regression Implementation from Scratch: LinearRegressionScratch keeps
w and b as plain tensors with requires_grad=True (not nn.Parameters), loss = mean((y_hat - y)^2 / 2), and
d2l's own SGD class (`param -= lr * param.grad`, `param.grad.zero_()`), driven by d2l.Trainer (backward
and step under torch.no_grad()), lr=0.03, batch 32, 3 epochs on SyntheticRegressionData(w=[2, -3.4],
b=4.2, noise 0.01).

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/linear-regression-scratch.md
The book prints errors in estimating w of ~[0.14, -0.15] and b of ~0.21 after 3 epochs (the loss is
halved, so its steps are half those of the concise version). A user wraps `trainer.fit` in
`nbdebug.watch(model)`; the model registers no parameters with PyTorch, so nbdebug sees its losses but no
weights.
Nothing is scaled: the program runs as written (1000 training and 1000 validation examples).
"""

from __future__ import annotations

import torch

from ...harness import case
from ._common import D2LModule, D2LTrainer, tensor_loader


class SGD:
    """d2l.SGD: minibatch stochastic gradient descent on a list of tensors."""

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr = params, lr

    def step(self) -> None:
        for param in self.params:
            param -= self.lr * param.grad

    def zero_grad(self) -> None:
        for param in self.params:
            if param.grad is not None:
                param.grad.zero_()


class LinearRegressionScratch(D2LModule):
    def __init__(self, num_inputs: int, lr: float, sigma: float = 0.01) -> None:
        super().__init__()
        self.lr = lr
        self.w = torch.normal(0, sigma, (num_inputs, 1), requires_grad=True)
        self.b = torch.zeros(1, requires_grad=True)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.matmul(X, self.w) + self.b

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        l = (y_hat - y) ** 2 / 2  # noqa: E741 (the book's name)
        return l.mean()

    def configure_optimizers(self) -> SGD:
        return SGD([self.w, self.b], self.lr)


@case(
    name="healthy-d2l-linreg-scratch-plain-tensors",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_linear-regression/linear-regression-scratch.md",
    title="d2l linear regression from scratch: weights are plain tensors, d2l's own SGD class, 3 epochs",
    healthy=True,
    verify=lambda m: m["w_err"] < 0.3 and m["b_err"] < 0.4 and m["val_loss"] < 0.2,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    w_true, b_true = torch.tensor([2, -3.4]), 4.2
    n = 2000
    X = torch.randn(n, len(w_true))
    y = torch.matmul(X, w_true.reshape((-1, 1))) + b_true + torch.randn(n, 1) * 0.01
    model = LinearRegressionScratch(2, lr=0.03)
    trainer = D2LTrainer(max_epochs=3)
    with nb.watch(model):
        trainer.fit(
            model,
            tensor_loader((X[:1000], y[:1000]), 32, True),
            tensor_loader((X[1000:], y[1000:]), 32, False),
        )
    return {
        "w_err": (model.w.detach().reshape(-1) - w_true).abs().max().item(),
        "b_err": abs(model.b.item() - b_true),
        "val_loss": sum(model.val_losses) / len(model.val_losses),
    }
