"""Dive into Deep Learning 8.5, Batch Normalization (concise implementation): BNLeNet = LeNet-5 with a
LazyBatchNorm2d/LazyBatchNorm1d before every Sigmoid (LazyConv2d(6, 5), BN, Sigmoid, AvgPool2d(2),
LazyConv2d(16, 5), BN, Sigmoid, AvgPool2d(2), Flatten, LazyLinear(120), BN, Sigmoid, LazyLinear(84), BN,
Sigmoid, LazyLinear(10)), Xavier-initialised by `model.apply_init(..., init_cnn)`, SGD lr=0.1 built inside
trainer.fit, batch 128, 10 epochs, validation (BatchNorm in eval mode) each epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_convolutional-modern/batch-norm.md
The book reports validation accuracy ~0.85 on Fashion-MNIST, reached much faster than plain sigmoid LeNet.
Scaled: digits resized to 28x28 in [0, 1] instead of Fashion-MNIST; 10 epochs of 11 batches. A user
watches the model around `trainer.fit`.
"""

from __future__ import annotations

from torch import nn

from ...data import split
from ...harness import case
from ._common import D2LClassifier, D2LTrainer, mean, resized_digits, tensor_loader


def init_cnn(module: nn.Module) -> None:
    if type(module) is nn.Linear or type(module) is nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


class BNLeNet(D2LClassifier):
    def __init__(self, lr: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(num_classes),
        )  # fmt: skip

    def apply_init(self, inputs: list, init=None) -> None:
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


@case(
    name="healthy-d2l-batchnorm-lenet",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_convolutional-modern/batch-norm.md",
    title="d2l LeNet with BatchNorm before every sigmoid, SGD lr=0.1, batch 128, eval-mode validation",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.8,
    quick=True,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(28, unit=True))
    train_loader = tensor_loader((xt, yt), 128, True)
    model = BNLeNet(lr=0.1)
    model.apply_init([next(iter(train_loader))[0]], init_cnn)
    trainer = D2LTrainer(max_epochs=10)
    with nb.watch(model):
        trainer.fit(model, train_loader, tensor_loader((xv, yv), 128, False))
    return {"val_acc": mean(model.val_accs), "val_loss": mean(model.val_losses)}
