"""fastai's basic_train loop with nn.MSELoss: the DataLoader yields (N,) targets, the model (N, 1).

Source: fastai/fastai issue #1863, "error using nn.MSELoss() with basic_train.py"
https://github.com/fastai/fastai/issues/1863
Reported: "`model(xb)` has shape (N,1) while `yb` has shape (N,). ... the DataLoader is returning the
shapes that cause this function not to work with nn.MSELoss() due to broadcasting."
Fix: make the shapes agree (the target reshaped to (N, 1)). The loop is fastai's `train_epoch`
(model.train(); loss_func(model(xb), yb); backward; step; zero_grad) with its default Adam(lr=3e-3);
a seeded synthetic tabular regression stands in for the reporter's gist.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def train_epoch(model: nn.Module, dl, opt: torch.optim.Optimizer, loss_func) -> None:
    model.train()
    for xb, yb in dl:
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()


@case(
    name="mse-broadcast-fastai-train-epoch",
    source="https://github.com/fastai/fastai/issues/1863",
    title="fastai basic_train.train_epoch regression with MSELoss, (N,1) output vs (N,) target",
    expect="target-broadcast",
    verify=lambda bug, fixed: (
        bug["val_mse"] > 0.5 * bug["target_var"] and fixed["val_mse"] < 0.2 * fixed["target_var"]
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(1863)
    x = torch.randn(1600, 8, generator=g)
    y = x @ torch.linspace(-2.0, 2.0, 8) + torch.sin(2 * x[:, 0]) + 0.1 * torch.randn(1600, generator=g)
    (xt, yt), (xv, yv) = (x[:1400], y[:1400]), (x[1400:], y[1400:])
    if not bug:
        yt, yv = yt[:, None], yv[:, None]
    model = nn.Sequential(nn.Linear(8, 50), nn.ReLU(), nn.Linear(50, 1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.99))
    dl = loader(xt, yt, batch_size=64)
    with nb.watch(model, opt):
        for _epoch in range(3):
            train_epoch(model, dl, opt, nn.MSELoss())
    with torch.no_grad():
        val_mse = ((model(xv).squeeze(1) - yv.reshape(-1)) ** 2).mean().item()
    return {"val_mse": val_mse, "target_var": yv.var().item()}
