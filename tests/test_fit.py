"""Train / validation advice (monitor/fit.py): overfitting, underfitting, a validation set too small to
tell, validation above training. Rules at the edge of their evidence on synthetic epoch tables, then real
runs: a large MLP on 100 digits overfits, a linear model on concentric circles underfits, and a short
healthy run gets no advice. Everything here is severity info."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import load_digits, make_circles
from torch import nn

import nbdebug
from nbdebug.monitor.fit import Epoch, best_epoch, fit_findings


def epochs(rows, n=1000):
    """(loss, train_acc, val_loss, val_acc) per epoch."""
    return [Epoch(i, loss, tr, vl, va, n) for i, (loss, tr, vl, va) in enumerate(rows)]


def codes(found):
    return [f.code for f in found]


def test_overfitting_from_a_rising_validation_loss_names_the_best_epoch():
    rows = [(1.0, 0.7, 0.80, 0.75), (0.5, 0.85, 0.60, 0.82), (0.3, 0.92, 0.62, 0.82), (0.2, 0.96, 0.66, 0.82)]
    found = fit_findings(epochs(rows))
    assert codes(found) == ["overfitting"] and found[0].severity == "info"
    assert found[0].evidence["best_epoch"] == 1 and "stop at epoch 1" in found[0].hint
    assert best_epoch(epochs(rows)) == 1


def test_a_rise_under_three_percent_or_one_epoch_long_is_not_overfitting():
    small = [
        (1.0, 0.7, 0.80, 0.75),
        (0.5, 0.85, 0.60, 0.82),
        (0.3, 0.86, 0.61, 0.82),
        (0.2, 0.87, 0.615, 0.82),
    ]
    assert "overfitting" not in codes(fit_findings(epochs(small)))  # +2.5%: within the margin
    short = [(1.0, 0.7, 0.80, 0.75), (0.6, 0.8, 0.7, 0.8), (0.5, 0.85, 0.60, 0.82), (0.3, 0.86, 0.66, 0.82)]
    assert "overfitting" not in codes(fit_findings(epochs(short)))  # risen for one epoch only
    rising_train = [
        (1.0, 0.7, 0.80, 0.75),
        (0.5, 0.8, 0.60, 0.8),
        (0.6, 0.8, 0.64, 0.8),
        (0.7, 0.8, 0.66, 0.8),
    ]
    assert "overfitting" not in codes(fit_findings(epochs(rising_train)))  # both rise: not overfitting


def test_overfitting_from_a_growing_accuracy_gap_beyond_the_noise():
    rows = [(1.0, 0.80, math.nan, 0.78), (0.6, 0.90, math.nan, 0.80), (0.4, 0.95, math.nan, 0.80),
            (0.3, 0.99, math.nan, 0.80)]  # fmt: skip
    assert codes(fit_findings(epochs(rows))) == ["overfitting"]
    # the same gaps on a 30-example validation set are within two standard errors: no advice on them
    assert "overfitting" not in codes(fit_findings(epochs(rows, n=30)))


def test_underfitting_close_low_and_flat():
    rows = [(0.70, 0.60, 0.70, 0.59), (0.69, 0.61, 0.69, 0.60), (0.69, 0.60, 0.69, 0.61)]
    found = fit_findings(epochs(rows))
    assert codes(found) == ["underfitting"]
    found = fit_findings(epochs(rows), update_ratio=3e-6)
    assert "raise the learning rate" in found[0].message
    still_learning = [(0.9, 0.50, 0.9, 0.49), (0.8, 0.56, 0.8, 0.55), (0.7, 0.62, 0.7, 0.61)]
    assert "underfitting" not in codes(fit_findings(epochs(still_learning)))
    high = [(0.10, 0.95, 0.12, 0.94), (0.10, 0.95, 0.12, 0.94), (0.10, 0.95, 0.12, 0.94)]
    assert "underfitting" not in codes(fit_findings(epochs(high)))  # close and flat, but not low


def test_a_small_validation_set_is_said_to_be_too_small_instead_of_advising():
    rows = [(0.5, 0.80, 0.6, 0.75), (0.45, 0.82, 0.6, 0.80), (0.4, 0.84, 0.6, 0.75)]
    found = fit_findings(epochs(rows, n=40))
    assert codes(found) == ["val-too-small"] and "40 examples" in found[0].message
    assert fit_findings(epochs(rows, n=4000)) == []  # +-1.4%: the 5% moves are real, and not advice


def test_validation_above_training_is_explained_by_dropout_or_flagged_as_a_hint():
    rows = [(0.5, 0.80, 0.4, 0.86), (0.45, 0.80, 0.4, 0.87), (0.4, 0.81, 0.4, 0.87)]
    with_dropout = fit_findings(epochs(rows), dropout=True)
    assert codes(with_dropout) == ["val-above-train"] and "dropout" in with_dropout[0].message
    without = fit_findings(epochs(rows), dropout=False)
    assert "leaking" in without[0].message and without[0].severity == "info"
    lagging = [(0.9, 0.60, 0.6, 0.80), (0.6, 0.75, 0.5, 0.85), (0.5, 0.82, 0.4, 0.87)]
    assert "val-above-train" not in codes(fit_findings(epochs(lagging)))  # training accuracy still rising


def test_no_advice_before_three_epochs_with_validation():
    assert fit_findings(epochs([(1.0, 0.5, 1.0, 0.5), (0.5, 0.9, 0.9, 0.5)])) == []


# -- real runs ------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


def run(model, opt, train, val, epochs, batch_size):
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*train), batch_size=batch_size, shuffle=True
    )
    criterion = nn.CrossEntropyLoss()
    with nbdebug.watch(model, opt) as w:
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                criterion(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                criterion(model(val[0]), val[1])
    return w


def digits():
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean()) / x.std()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm], torch.tensor(d.target)[perm]


def serious(w):
    return [f for f in w.findings if f.severity != "info"]


@pytest.mark.slow
def test_a_large_mlp_on_100_digits_overfits_and_the_best_epoch_is_named():
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    w = run(model, torch.optim.Adam(model.parameters(), 1e-3), (x[:100], y[:100]), (x[100:], y[100:]), 30, 20)
    advice = [f for f in w.findings if f.code == "overfitting"]
    assert advice and advice[0].severity == "info" and serious(w) == []
    best = w.best_epoch
    assert best is not None and 3 <= best < 29
    assert w.epochs["val_loss"].iloc[best] == w.epochs["val_loss"].min()
    assert f"stop at epoch {best}" in advice[0].hint


def test_a_linear_model_on_circles_underfits():
    xc, yc = make_circles(1200, noise=0.1, factor=0.5, random_state=0)
    xc, yc = torch.tensor(xc, dtype=torch.float32), torch.tensor(yc)
    model = nn.Linear(2, 2)
    w = run(
        model, torch.optim.Adam(model.parameters(), 1e-2), (xc[:800], yc[:800]), (xc[800:], yc[800:]), 12, 32
    )
    assert "underfitting" in [f.code for f in w.findings]
    assert "overfitting" not in [f.code for f in w.findings]


def test_a_short_healthy_run_gets_no_advice():
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    w = run(
        model, torch.optim.Adam(model.parameters(), 1e-3), (x[:1400], y[:1400]), (x[1400:], y[1400:]), 3, 64
    )
    assert w.findings == [] and w.best_epoch is not None


def test_the_panel_marks_the_best_epoch_and_shows_the_advice_next_to_the_curves():
    from nbdebug.monitor.panel import watch_panel

    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x[:60], y[:60]), batch_size=20, shuffle=True
    )
    w = nbdebug.watch(model, opt)
    panel = watch_panel(w)
    with w:
        for _ in range(25):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                nn.functional.cross_entropy(model(x[100:]), y[100:])
    panel.finish()
    assert w.best_epoch is not None
    assert f"best epoch: {w.best_epoch}" in panel.advice.value
    assert 'data-code="overfitting"' in panel.advice.value
    assert panel.curves_img.value[:4] == b"\x89PNG"
