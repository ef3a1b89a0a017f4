"""A windowed MLP forecaster trained on a series whose target column has missing values (NaN).

Source: Nixtla/neuralforecast issue #186, "silent bug, training with NaNs values"
https://github.com/Nixtla/neuralforecast/issues/186
Reported: "We should include an exception when missing values are passed in the `y` column. The loss
becomes `nan` during training but it is hard to notice that the problem is in the data."
Fix: handle the missing values before training (here: drop the windows that contain one). The program is
an MLP over the last 24 values predicting the next 12 (MAE loss, Adam 1e-3), on a seeded synthetic
seasonal series with 1% of its values missing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def windows(series: torch.Tensor, inp: int = 24, out: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(len(series) - inp - out + 1)
    x = torch.stack([series[i : i + inp] for i in idx])
    y = torch.stack([series[i + inp : i + inp + out] for i in idx])
    return x, y


@case(
    name="nan-in-target-series-forecaster",
    source="https://github.com/Nixtla/neuralforecast/issues/186",
    title="MLP forecaster on a series with missing values (NaN) in y: the loss becomes NaN",
    expect="nonfinite",
    verify=lambda bug, fixed: not math.isfinite(bug["val_mae"]) and fixed["val_mae"] < 0.5,
    quick=True,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(186)
    t = torch.arange(3000, dtype=torch.float32)
    series = torch.sin(2 * math.pi * t / 24) + 0.5 * torch.sin(2 * math.pi * t / 168)
    series = series + 0.1 * torch.randn(len(t), generator=g)
    series[torch.rand(len(t), generator=g) < 0.01] = float("nan")
    x, y = windows(series)
    if not bug:
        keep = torch.isfinite(x).all(1) & torch.isfinite(y).all(1)
        x, y = x[keep], y[keep]
    n = int(0.8 * len(x))
    xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]
    model = nn.Sequential(nn.Linear(24, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for xb, yb in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = nn.functional.l1_loss(model(xb), yb)
                loss.backward()
                optimizer.step()
    keep = torch.isfinite(xv).all(1) & torch.isfinite(yv).all(1)
    with torch.no_grad():
        val_mae = (model(xv[keep]) - yv[keep]).abs().mean().item()
    return {"val_mae": val_mae}
