"""Small real training loops for the watch tests: healthy ones and one per classic bug (digits, CPU)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import nbdebug


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: these nets are tiny, and on a shared 2-core machine torch's thread pool
    makes each step ~30x slower than a single thread does (measured)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


_DIGITS: dict[str, torch.Tensor] = {}


def digits(normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits as (N, 64) float inputs and (N,) class indices."""
    if not _DIGITS:
        from sklearn.datasets import load_digits

        d = load_digits()
        _DIGITS["x"] = torch.tensor(d.data, dtype=torch.float32)
        _DIGITS["y"] = torch.tensor(d.target)
    x, y = _DIGITS["x"], _DIGITS["y"]
    if normalize:
        x = (x - x.mean()) / x.std()
    return x, y


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = True):
    ds = torch.utils.data.TensorDataset(x, y)
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g)


def mlp(n_in: int = 64, hidden: int = 64, n_out: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_out)
    )


def cnn(dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(16 * 16, 10),
    )


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data,
    loss_fn: Callable | None = None,
    epochs: int = 3,
    zero_grad: bool = True,
    val=None,
    eval_mode_bug: bool = False,
    **watch_kw,
) -> nbdebug.Watch:
    """The textbook loop under `nbdebug.watch`; flags switch on one classic bug at a time."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    with nbdebug.watch(model, opt, loss_fn, **watch_kw) as w:
        for _ in range(epochs):
            if not eval_mode_bug:
                model.train()
            for x, y in data:
                if zero_grad:
                    opt.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
            if val is not None:
                model.eval()
                with torch.no_grad():
                    for x, y in val:
                        loss_fn(model(x), y)
    return w


def serious(w: nbdebug.Watch) -> list[str]:
    """Codes of warning/error findings: what a healthy run must not have."""
    return [f"{f.code}: {f.message}" for f in w.findings if f.severity in ("warning", "error")]


def codes(w: nbdebug.Watch) -> set[str]:
    return {f.code for f in w.findings}


def isclose(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)
