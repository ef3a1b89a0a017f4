"""Dive into Deep Learning 8.6, Residual Networks (ResNet): the book's Residual block (two 3x3 LazyConv2d
with LazyBatchNorm2d, optional 1x1 conv shortcut), ResNet18 = b1 (7x7 conv stride 2, BN, ReLU, 3x3 max
pool) + four stages of two residual blocks + global average pool + LazyLinear(10), Xavier init via
`apply_init`, SGD lr=0.01 built inside trainer.fit, batch 128, 10 epochs with validation.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_convolutional-modern/resnet.md
The book reports training loss near 0 and validation accuracy ~0.9 on Fashion-MNIST (resized to 96x96),
with a visible train/validation gap (overfitting, not a bug).
Scaled: digits resized to 32x32 instead of 96x96; stage widths 8-16-32-64 instead of 64-128-256-512;
10 epochs of 11 batches. A user watches the model around `trainer.fit`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import split
from ...harness import case
from ._common import D2LClassifier, D2LTrainer, mean, resized_digits, tensor_loader


def init_cnn(module: nn.Module) -> None:
    if type(module) is nn.Linear or type(module) is nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


class Residual(nn.Module):
    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


class ResNet(D2LClassifier):
    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(8, kernel_size=7, stride=2, padding=3), nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )  # fmt: skip

    def block(self, num_residuals: int, num_channels: int, first_block: bool = False) -> nn.Sequential:
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)

    def __init__(self, arch: tuple, lr: float = 0.1, num_classes: int = 10) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f"b{i + 2}", self.block(*b, first_block=(i == 0)))
        self.net.add_module(
            "last", nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes))
        )
        self.net.apply(init_cnn)

    def apply_init(self, inputs: list, init=None) -> None:
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class ResNet18(ResNet):
    def __init__(self, lr: float = 0.1, num_classes: int = 10) -> None:
        super().__init__(((2, 8), (2, 16), (2, 32), (2, 64)), lr, num_classes)


@case(
    name="healthy-d2l-resnet18-small",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_convolutional-modern/resnet.md",
    title="d2l ResNet-18 (residual blocks with BatchNorm), SGD lr=0.01, batch 128, validation each epoch",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.8,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(32, unit=True))
    train_loader = tensor_loader((xt, yt), 128, True)
    model = ResNet18(lr=0.01)
    model.apply_init([next(iter(train_loader))[0]], init_cnn)
    trainer = D2LTrainer(max_epochs=10)
    with nb.watch(model):
        trainer.fit(model, train_loader, tensor_loader((xv, yv), 128, False))
    return {"val_acc": mean(model.val_accs), "val_loss": mean(model.val_losses)}
