"""d2l.ai's Kaggle house-price regression without its standardisation of the numerical features.

Source: d2l.ai, chapter_multilayer-perceptrons/kaggle-house-price.md
https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/kaggle-house-price.md
The chapter standardises every numerical column ("we standardize the data by rescaling features to zero
mean and unit variance") before training a linear model with minibatch SGD (lr=0.01) on the log of the
price, and asks as an exercise: "What happens if we do not standardize the continuous numerical features
as we have done in this section?" The program answers it on a seeded synthetic stand-in for the Kaggle
table (living area, lot area, year built, rooms, garage cars, quality at their real scales): with the
raw columns the SGD steps overflow within the first epoch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def house_table(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    area = 600 + 2000 * torch.rand(n, generator=g)
    lot = 2000 + 15000 * torch.rand(n, generator=g)
    year = 1900 + 110 * torch.rand(n, generator=g)
    rooms = torch.randint(3, 11, (n,), generator=g).float()
    garage = torch.randint(0, 4, (n,), generator=g).float()
    quality = torch.randint(1, 11, (n,), generator=g).float()
    log_price = (
        10.5 + 4e-4 * area + 1e-5 * lot + 3e-3 * (year - 1900) + 0.02 * rooms + 0.05 * garage + 0.08 * quality
        + 0.05 * torch.randn(n, generator=g)
    )  # fmt: skip
    return torch.stack([area, lot, year, rooms, garage, quality], 1), log_price


@case(
    name="unstandardized-features-house-prices-d2l",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/kaggle-house-price.md",
    title="linear regression by SGD(lr=0.01) on raw house features (areas in the thousands): it overflows",
    expect="unnormalized-input",
    verify=lambda bug, fixed: (
        not math.isfinite(bug["val_rmse"]) and fixed["val_rmse"] < 0.5 * fixed["first_rmse"]
    ),
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = house_table(1460, gen(1460))
    if not bug:
        x = (x - x.mean(0)) / x.std(0)
    xt, yt, xv, yv = x[:1200], y[:1200], x[1200:], y[1200:]
    model = nn.Linear(6, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.no_grad():
        first = (model(xv).squeeze(1) - yv).pow(2).mean().sqrt().item()
    with nb.watch(model, optimizer):
        for _epoch in range(10):
            for xb, yb in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(xb).squeeze(1), yb)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        rmse = (model(xv).squeeze(1) - yv).pow(2).mean().sqrt().item()
    return {"val_rmse": rmse, "first_rmse": first}
