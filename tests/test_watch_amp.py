"""nbdebug.watch under `torch.amp.GradScaler`: the history holds the loss the user computed and the
gradient norms of the unscaled gradients, whichever way the loop reads them; the scaler does what it
does unwatched.

A power-of-two scale multiplies float32 gradients exactly, so a loop run with a GradScaler (no autocast)
and without one takes the same steps: the watched history of one must equal the other's, value for value.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import nbdebug
from nbdebug._core import intercept
from tests.watch_loops import digits, mlp, single_thread  # noqa: F401  (autouse fixture)


def _batches(n: int = 8, bs: int = 32):
    x, y = digits()
    return [(x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]) for i in range(n)]


def _run(scaled: bool, *, fused: bool = False, give_optimizer: bool = True, autocast: bool = False,
         unscale_first: bool = False, init_scale: float = 2.0**16):  # fmt: skip
    """The AMP recipe of the PyTorch docs ('Automatic Mixed Precision examples'), on CPU."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, enabled=scaled)
    losses = []
    with nbdebug.watch(model, opt if give_optimizer else None) as w:
        for x, y in _batches():
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = nn.functional.cross_entropy(model(x), y)
            losses.append(float(loss.detach()))
            scaler.scale(loss).backward()
            if unscale_first:  # the docs' recipe for gradient clipping: unscale_, clip, step
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), 1e6)
            scaler.step(opt)
            scaler.update()
    return w, losses, model, scaler


@pytest.mark.parametrize(
    "how",
    [
        {},  # scaler.step unscales, then opt.step() reads unscaled gradients
        {"unscale_first": True},  # the user unscales before clipping: step() does not unscale again
        {"fused": True},  # a fused optimizer gets the scale and reads the gradients still scaled
        {"give_optimizer": False},  # watch adopts the optimizer: the first backward is read scaled
    ],
    ids=["step-unscales", "unscale-first", "fused-adam", "no-optimizer-given"],
)
def test_history_holds_the_unscaled_loss_and_gradient_norm(how):
    plain, plain_losses, plain_model, _ = _run(False, **how)
    amp, amp_losses, amp_model, scaler = _run(True, **how)
    assert scaler.get_scale() >= 2.0**16  # the scaler really scaled (and never backed off)
    assert amp_losses == plain_losses  # same steps: the scale is exact in float32
    h, hp = amp.history, plain.history
    assert len(h) == len(hp) == 8
    assert h["loss"].tolist() == pytest.approx(amp_losses, rel=1e-6)  # what the user computed
    assert h["grad_norm"].tolist() == pytest.approx(hp["grad_norm"].tolist(), rel=1e-5)
    ls, lp = amp.layer_stats(), plain.layer_stats()
    assert ls["grad_norm"].tolist() == pytest.approx(lp["grad_norm"].tolist(), rel=1e-5, nan_ok=True)
    first = amp.layers()[0]
    (_, lo, hi, _), (_, plo, phi, _) = (
        amp.histograms(first, "gradient")[0],
        plain.histograms(first, "gradient")[0],
    )
    assert (lo, hi) == pytest.approx((plo, phi), rel=1e-5)
    for a, b in zip(amp_model.parameters(), plain_model.parameters()):
        assert torch.equal(a, b)
    assert [f.code for f in amp.findings] == [f.code for f in plain.findings]
    assert amp.internal_errors == []
    assert not intercept.installed()


def test_bfloat16_autocast_records_the_loss_near_its_float32_value():
    w, losses, _, _ = _run(True, autocast=True)
    assert w.history["loss"].tolist() == pytest.approx(losses, rel=1e-6)
    assert max(w.history["loss"]) < 5  # ln(10) = 2.3 at the start, not 65536 times that
    assert w.internal_errors == []


def test_the_scaler_does_what_it_does_unwatched():
    """Same scale, growth tracker and weights with and without the watch (the watch only reads)."""

    def loop(watched: bool):
        torch.manual_seed(0)
        m = mlp()
        o = torch.optim.SGD(m.parameters(), lr=0.05)
        s = torch.amp.GradScaler("cpu", growth_interval=3)
        with nbdebug.watch(m, o) if watched else contextlib.nullcontext():
            for x, y in _batches():
                o.zero_grad()
                s.scale(nn.functional.cross_entropy(m(x), y)).backward()
                s.step(o)
                s.update()
        return m, s

    (m1, s1), (m2, s2) = loop(False), loop(True)
    assert s1.get_scale() == s2.get_scale() == 2.0**16 * 4  # grew twice in 8 steps
    assert s1.state_dict() == s2.state_dict()
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)


class _Spike(nn.Module):
    """Multiplies its input by a huge factor on the iterations listed, so that the scaled gradients
    overflow to Inf there and GradScaler skips optimizer.step() (as fp16 overflow does on a GPU)."""

    def __init__(self, at: set[int]) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * 1e36 if self.calls in self.at else x


def test_a_step_the_scaler_skips_is_no_training_step():
    torch.manual_seed(0)
    model = nn.Sequential(mlp(), _Spike(at={3, 4}))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    taken = []
    opt.register_step_post_hook(lambda *a: taken.append(1))
    scaler = torch.amp.GradScaler("cpu")
    losses, stepped = [], []
    with nbdebug.watch(model, opt) as w:
        for x, y in _batches():
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), nn.functional.one_hot(y, 10).float())
            before = len(taken)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
            stepped.append(len(taken) > before)
    assert stepped.count(False) == 2 and len(taken) == 6  # iterations 3 and 4 overflowed and were skipped
    assert scaler.get_scale() == 2.0**14  # backed off twice
    h = w.history
    assert w.steps == len(h) == 6
    kept = [v for v, s in zip(losses, stepped) if s]
    assert h["loss"].tolist() == pytest.approx(kept, rel=1e-6)  # a skipped loss is not added to the next
    assert w.monitor.amp.skipped == 2
    assert [f for f in w.findings if f.severity != "info"] == []
    assert w.internal_errors == []


def test_watch_gan_records_unscaled_losses():
    from tests.gan_loops import mixture, mlp_d, mlp_g

    torch.manual_seed(0)
    g, d = mlp_g(), mlp_d()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4)
    scaler = torch.amp.GradScaler("cpu")
    real = mixture()
    bce = nn.BCEWithLogitsLoss()
    d_losses, g_losses = [], []
    with nbdebug.watch_gan(d, g, opt_d, opt_g) as w:
        for i in range(6):
            xr = real[i * 32 : (i + 1) * 32]
            fake = g(torch.randn(32, 8))
            opt_d.zero_grad()
            ld = bce(d(xr), torch.ones(32, 1)) + bce(d(fake.detach()), torch.zeros(32, 1))
            scaler.scale(ld).backward()
            scaler.step(opt_d)
            opt_g.zero_grad()
            lg = bce(d(fake), torch.ones(32, 1))
            scaler.scale(lg).backward()
            scaler.step(opt_g)
            scaler.update()
            d_losses.append(float(ld.detach()))
            g_losses.append(float(lg.detach()))
    h = w.history
    assert h["d_loss"].tolist() == pytest.approx(d_losses, rel=1e-5)
    assert h["g_loss"].tolist() == pytest.approx(g_losses, rel=1e-5)
    assert w.internal_errors == []


def test_unscaling_another_optimizer_leaves_ours_scaled():
    """Per-optimizer stages: `scaler.unscale_(opt_b)` unscales only opt_b's gradients; a fused opt_a still
    reads its own scaled, and the watch on opt_a's model divides them by the scale."""

    def loop(scaled: bool):
        torch.manual_seed(0)
        a, b = mlp(), mlp()
        opt_a = torch.optim.Adam(a.parameters(), lr=1e-3, fused=True)
        opt_b = torch.optim.SGD(b.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cpu", enabled=scaled)
        with nbdebug.watch(a, opt_a) as w:
            for x, y in _batches(4):
                opt_a.zero_grad()
                opt_b.zero_grad()
                loss = nn.functional.cross_entropy(a(x), y) + nn.functional.cross_entropy(b(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(opt_b)  # e.g. to clip b's gradients
                scaler.step(opt_b)
                scaler.step(opt_a)
                scaler.update()
        return w

    plain, amp = loop(False), loop(True)
    assert amp.history["grad_norm"].tolist() == pytest.approx(plain.history["grad_norm"].tolist(), rel=1e-5)
    assert amp.history["loss"].tolist() == pytest.approx(plain.history["loss"].tolist(), rel=1e-6)
