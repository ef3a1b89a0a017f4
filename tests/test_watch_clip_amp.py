"""clip-scaled-grads: `clip_grad_norm_` / `clip_grad_value_` on gradients GradScaler still scales.

The loops are the PyTorch AMP recipe on CPU (a GradScaler scales float32 gradients exactly); the bug is the
clip placed before `scaler.unscale_(opt)`. The name imported at module level below was bound before any
watch started, as in pytorch/pytorch#40907: the watch must see it all the same.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.clip_grad as clip_grad_module
from torch import nn
from torch.nn.utils import clip_grad_norm_, clip_grad_value_

import nbdebug
from nbdebug._core import intercept
from tests.watch_loops import codes, digits, mlp, serious, single_thread  # noqa: F401  (autouse fixture)


def _run(*, amp: bool = True, unscale: bool = False, clip: str = "norm", limit: float = 1.0,
         init_scale: float = 2.0**16, watched: bool = True, steps: int = 12):  # fmt: skip
    torch.manual_seed(0)
    x, y = digits()
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, enabled=amp)
    ctx = nbdebug.watch(model, optimizer) if watched else None
    w = ctx.__enter__() if ctx is not None else None
    try:
        for i in range(steps):
            xb, yb = x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            scaler.scale(loss).backward()
            if unscale:
                scaler.unscale_(optimizer)
            if clip == "norm":
                clip_grad_norm_(model.parameters(), limit)
            elif clip == "value":
                clip_grad_value_(model.parameters(), limit)
            scaler.step(optimizer)
            scaler.update()
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    return w, model


def test_clip_norm_on_scaled_gradients_is_named_at_the_first_step():
    w, _ = _run()
    f = next(f for f in w.findings if f.code == "clip-scaled-grads")
    assert f.severity == "error"
    ev = f.evidence
    assert ev["step"] == 1 and ev["scale"] == 2.0**16 and ev["limit"] == 1.0 and ev["count"] == 12
    # the evidence is the true norm: the same loop unscaled first clips the same gradients
    torch.manual_seed(0)
    x, y = digits()
    model = mlp()
    nn.functional.cross_entropy(model(x[:32]), y[:32]).backward()
    true_norm = float(torch.stack([p.grad.norm() for p in model.parameters()]).norm())
    assert ev["before"] == pytest.approx(true_norm, rel=1e-4)
    assert ev["after"] == pytest.approx(1.0 / 2.0**16, rel=1e-4)  # clipped to 1 while x65536, then unscaled
    assert "scaler.unscale_(optimizer)" in f.hint and "clip_grad_norm_" in f.hint  # the loop's own names
    assert w.internal_errors == []


def test_a_scale_of_two_is_already_a_scaled_clip():
    """Just above the edge: a scale of 2 (1 is silent, see below) halves every clipped update."""
    w, _ = _run(init_scale=2.0, limit=0.1)
    f = next(f for f in w.findings if f.code == "clip-scaled-grads")
    assert f.evidence["scale"] == 2.0 and f.evidence["after"] == pytest.approx(0.05, rel=1e-4)


def test_clip_value_on_scaled_gradients_is_named():
    w, _ = _run(clip="value", limit=0.5)
    f = next(f for f in w.findings if f.code == "clip-scaled-grads")
    assert f.evidence["kind"] == "value" and f.evidence["limit"] == 0.5
    assert f.evidence["after"] == pytest.approx(0.5 / 2.0**16)


@pytest.mark.parametrize(
    "how",
    [
        {"unscale": True},  # the AMP docs' recipe: unscale_, then clip
        {"amp": False},  # clipping without a GradScaler
        {"amp": False, "unscale": True},  # a disabled GradScaler: scale() returns the loss itself
        {"init_scale": 1.0},  # a scale of 1 leaves the gradients as they are: the clip is right
        {"clip": "none"},  # AMP without clipping
    ],
    ids=["unscale-then-clip", "no-amp", "disabled-scaler", "scale-1", "no-clip"],
)
def test_healthy_clipping_stays_silent(how):
    w, _ = _run(**how)
    assert "clip-scaled-grads" not in codes(w)
    assert serious(w) == []


def test_clip_functions_are_put_back_and_training_is_unchanged():
    before = (clip_grad_module._clip_grads_with_norm_, clip_grad_module.clip_grad_value_,
              torch.nn.utils.clip_grad_value_, torch.nn.utils.clip_grads_with_norm_)  # fmt: skip
    _, watched = _run()
    assert not intercept.installed()
    after = (clip_grad_module._clip_grads_with_norm_, clip_grad_module.clip_grad_value_,
             torch.nn.utils.clip_grad_value_, torch.nn.utils.clip_grads_with_norm_)  # fmt: skip
    assert all(a is b for a, b in zip(before, after))
    wrapper = clip_grad_module.clip_grad_value_  # the function its no-grad wrapper calls is back too
    assert wrapper.__closure__[0].cell_contents is wrapper.__wrapped__
    _, plain = _run(watched=False)
    for a, b in zip(watched.parameters(), plain.parameters()):
        assert torch.equal(a, b)  # same seed, same weights with and without watch


class _Trainer:
    """FixMatch's layout (TorchSSL): the optimizer and the scaler are attributes of a trainer object."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = mlp()
        self.opt_sgd = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.amp_scaler = torch.amp.GradScaler("cpu")

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.opt_sgd.zero_grad()
        self.amp_scaler.scale(nn.functional.cross_entropy(self.model(x), y)).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.amp_scaler.step(self.opt_sgd)
        self.amp_scaler.update()


def test_the_fix_names_the_loops_own_attributes():
    x, y = digits()
    t = _Trainer()
    with nbdebug.watch(t.model, t.opt_sgd) as w:
        for i in range(3):
            t.train_step(x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32])
    f = next(f for f in w.findings if f.code == "clip-scaled-grads")
    assert "self.amp_scaler.unscale_(self.opt_sgd)" in f.hint


def test_clip_of_another_models_parameters_is_not_this_watch():
    """A scaled clip of parameters the watched model does not hold says nothing about it."""
    torch.manual_seed(0)
    x, y = digits()
    model, other = mlp(), mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")
    with nbdebug.watch(model, opt) as w:
        for _ in range(4):
            opt.zero_grad()
            scaler.scale(nn.functional.cross_entropy(model(x[:32]), y[:32])).backward()
            scaler.unscale_(opt)
            other.zero_grad()
            nn.functional.cross_entropy(other(x[:32]), y[:32]).backward()
            clip_grad_norm_(other.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
    assert "clip-scaled-grads" not in codes(w)
