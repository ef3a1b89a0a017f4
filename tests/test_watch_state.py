"""watch observes and never changes the training; it leaves nothing behind, whatever happened."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import nbdebug
from nbdebug._core import intercept as _intercept
from nbdebug._core.hooks import hook_counts
from tests.watch_loops import (
    cnn,
    digits,
    loader,
    single_thread,  # noqa: F401  (autouse fixture)
)

ORIGINALS = {
    "backward": torch.autograd.backward,
    "cross_entropy": F.cross_entropy,
    "mse_loss": F.mse_loss,
    "iter": DataLoader.__dict__["__iter__"],
}


def _untouched() -> None:
    assert not _intercept.installed()
    assert torch.autograd.backward is ORIGINALS["backward"]
    assert F.cross_entropy is ORIGINALS["cross_entropy"] and F.mse_loss is ORIGINALS["mse_loss"]
    assert DataLoader.__dict__["__iter__"] is ORIGINALS["iter"]


def _run(model, opt, dl, watched: bool, epochs: int = 2, **kw):
    ctx = nbdebug.watch(model, opt, every=1, **kw) if watched else _Null()
    with ctx:
        for _ in range(epochs):
            model.train()
            for x, y in dl:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
    return ctx


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize(
    "make_opt", [lambda p: torch.optim.Adam(p, lr=1e-3), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)]
)
def test_same_final_weights_with_and_without_watch(make_opt):
    """Same seed, dropout and batch-norm included: bit-identical weights, buffers and optimizer state."""
    x, y = digits()
    results = []
    for watched in (False, True):
        torch.manual_seed(0)
        model = cnn(dropout=0.3)
        opt = make_opt(model.parameters())
        _run(model, opt, loader(x[:320], y[:320]), watched)
        results.append((model.state_dict(), opt.state_dict(), torch.rand(1)))
    (a, oa, ra), (b, ob, rb) = results
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(ra, rb)  # the RNG stream was not consumed by the monitor either
    sa, sb = oa["state"], ob["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i] if torch.is_tensor(sa[i][k]))


def test_hooks_and_patches_removed_on_success():
    x, y = digits()
    model = cnn()
    before = hook_counts(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w = _run(model, opt, loader(x[:128], y[:128]), True, epochs=1)
    assert hook_counts(model) == before
    assert opt._optimizer_step_pre_hooks == {} and opt._optimizer_step_post_hooks == {}
    _untouched()
    assert w.steps == 2 and not w.running


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
def test_hooks_and_patches_removed_on_exception_and_interrupt(exc):
    x, y = digits()
    model = cnn()
    before = hook_counts(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(exc):
        with nbdebug.watch(model, opt) as w:
            for i, (xb, yb) in enumerate(loader(x[:320], y[:320])):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                if i == 2:
                    raise exc()
    assert hook_counts(model) == before
    assert opt._optimizer_step_pre_hooks == {}
    _untouched()
    assert w.steps == 3 and "stopped by" in w.summary()
    assert w.history["loss"].notna().all()  # what was seen before the interruption is kept


def test_nested_watches_share_the_patches():
    """Two watches at once (as a GAN watcher runs one per network): patches stay until the last exits."""
    x, y = digits()
    a, b = nn.Linear(64, 10), nn.Linear(64, 10)
    oa, ob = torch.optim.SGD(a.parameters(), lr=0.1), torch.optim.SGD(b.parameters(), lr=0.1)
    with nbdebug.watch(a, oa) as wa:
        with nbdebug.watch(b, ob) as wb:
            for opt, m in ((oa, a), (ob, b)):
                opt.zero_grad()
                F.cross_entropy(m(x[:32]), y[:32]).backward()
                opt.step()
        assert _intercept.installed()
    _untouched()
    assert wa.steps == 1 and wb.steps == 1


@pytest.mark.slow
def test_no_tensor_outlives_its_step():
    """Summaries only: after many steps the number of live tensors is what the loop itself holds (the
    histogram values waiting to be binned, at most MAX_STEPS steps' worth, are binned before counting)."""
    from nbdebug.monitor.histqueue import MAX_STEPS

    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb, yb = x[:32], y[:32]

    def live() -> int:
        assert len(w.monitor.hists.waiting) <= MAX_STEPS
        w.monitor.hists.resolve()
        gc.collect()
        with warnings.catch_warnings():  # isinstance() on torch's deprecated module aliases warns
            warnings.simplefilter("ignore")
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

    with nbdebug.watch(model, opt, every=1, max_samples=50) as w:
        for i in range(600):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            if i == 99:
                at_100 = live()
        at_600 = live()
    assert at_600 <= at_100
    assert len(w.monitor.samples) <= 51  # thinned, not growing with the run
    assert len(w.history) == 600


def test_a_failing_statistic_never_breaks_the_training(monkeypatch):
    """A bug inside the monitor is recorded in internal_errors; the user's loop runs to the end."""
    import nbdebug.monitor.activations as monitor

    def broken(out):
        raise RuntimeError("statistic failed")

    monkeypatch.setattr(monitor, "unit_maxima", broken)
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = _run(model, opt, loader(x[:128], y[:128]), True, epochs=1)
    assert w.steps == 2
    assert any("statistic failed" in e for e in w.internal_errors)


@pytest.mark.parametrize("g_zero_grad", [True, False])
def test_two_networks_gan_trap(g_zero_grad):
    """One watch per network, as a GAN watcher reuses the monitor: G's backward also fills D's .grad,
    which is not a leak since D zeroes before its own step; a missing zero_grad on G's optimizer is."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=1e-3), torch.optim.Adam(D.parameters(), lr=1e-3)
    bce = nn.BCEWithLogitsLoss()
    real = torch.randn(512, 2) * 0.5 + 2
    with nbdebug.watch(D, opt_d) as wd, nbdebug.watch(G, opt_g) as wg:
        for i in range(0, 512, 32):
            fake = G(torch.randn(32, 4))
            opt_d.zero_grad()
            d_loss = bce(D(real[i : i + 32]), torch.ones(32, 1)) + bce(D(fake.detach()), torch.zeros(32, 1))
            d_loss.backward()
            opt_d.step()
            if g_zero_grad:
                opt_g.zero_grad()
            bce(D(fake), torch.ones(32, 1)).backward()  # reaches D's parameters too
            opt_g.step()
    assert "grad-not-zeroed" not in {f.code for f in wd.findings}
    assert ("grad-not-zeroed" in {f.code for f in wg.findings}) is (not g_zero_grad)
    assert wd.steps == wg.steps == 16
