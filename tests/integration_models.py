"""Small models and loops shared by the framework-integration tests: the same network trained by a plain loop,
by PyTorch Lightning and by the Hugging Face Trainer, so that what `watch` says in each can be compared."""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from tests.watch_loops import digits, loader

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BUGS = ("healthy", "softmax", "lr_high", "dead_relu", "frozen")
EXPECTED = {  # the code each planted bug is named by, in a plain loop as in the frameworks
    "softmax": "softmax-before-ce",
    "lr_high": "lr-too-high",
    "dead_relu": "dead-relu",
    "frozen": "no-grad",
}


class Net(nn.Module):
    """The digits MLP with one planted bug at a time."""

    def __init__(self, bug: str = "healthy") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.bug = bug
        if bug == "dead_relu":
            with torch.no_grad():
                self.body[0].bias.fill_(-10.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        if self.bug == "frozen":
            h = h.detach()  # the body is frozen by accident: no gradient reaches it
        out = self.head(h)
        return out.softmax(1) if self.bug == "softmax" else out


def setup(bug: str) -> dict:
    """Data, optimizer settings and epochs for a bug (lr_high: SGD(0.3, momentum 0.9) on batches of 32, 100x
    the lr of 3e-3 that trains this net well)."""
    x, y = digits()
    if bug == "lr_high":
        return dict(train=(x[:1000], y[:1000]), batch=32, opt="sgd", lr=0.3, epochs=2, val=None)
    return dict(
        train=(x[:640], y[:640]), batch=64, opt="adam", lr=1e-3, epochs=3, val=(x[1500:1700], y[1500:1700])
    )


def make_opt(kind: str, params, lr: float) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.Adam(params, lr=lr)


def plain_run(bug: str, watched: bool = True):
    """The textbook loop over the same data, optimizer and validation as the framework runs. The data come
    in a fixed order: Lightning draws from a loader's generator differently from a plain loop after the
    first epoch, and the comparison needs the same batches."""
    cfg = setup(bug)
    torch.manual_seed(0)
    model = Net(bug)
    opt = make_opt(cfg["opt"], model.parameters(), cfg["lr"])
    train_dl = loader(*cfg["train"], batch_size=cfg["batch"], shuffle=False)
    val_dl = loader(*cfg["val"], batch_size=100, shuffle=False) if cfg["val"] else None
    ctx = nbdebug.watch(model, opt) if watched else None
    if ctx is not None:
        ctx.__enter__()
    try:
        for _ in range(cfg["epochs"]):
            model.train()
            for xb, yb in train_dl:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            if val_dl is not None:
                model.eval()
                with torch.no_grad():
                    for xb, yb in val_dl:
                        F.cross_entropy(model(xb), yb)
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    return ctx, model


def quiet_lightning() -> None:
    """Lightning's tips and data-loader advice are not what these tests are about."""
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")
