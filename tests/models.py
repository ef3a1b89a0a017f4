"""Small models shared by the tests (and mirrored in the notebooks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DenoisingAutoencoder(nn.Module):
    """Conv encoder / transposed-conv decoder for 1x28x28 images."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class SmallCNN(nn.Module):
    """Conv -> pool -> flatten -> Linear; `in_features` can be set wrong on purpose."""

    def __init__(self, in_features: int = 64 * 6 * 6, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 64, 3)
        self.bn = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(in_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = torch.flatten(x, 1)
        return self.fc(self.drop(x))


class Residual(nn.Module):
    def __init__(self, c: int, stride: int = 1, shortcut: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c * stride, 3, stride=stride, padding=1)
        self.down = nn.Conv2d(c, c * stride, 1, stride=stride) if (stride > 1 and shortcut) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x) + self.down(x))


class UNetish(nn.Module):
    """Skip connection with cat, interpolate, view and permute between modules."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.mid = nn.Conv2d(8, 8, 3, padding=1)
        self.out = nn.Conv2d(11, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.down(x))
        h = F.interpolate(h, size=x.shape[-2:])
        h = torch.cat([h, x], dim=1)
        y = self.out(h)
        y = y.permute(0, 2, 3, 1)
        return y.reshape(y.shape[0], -1)
