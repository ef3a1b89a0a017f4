"""watch_gan's conclusive evidence and degenerate loops (issue 14 symptom 4, item 4): a generator that
ignores its noise is mode collapse from its first step, without waiting for a spread it never had; an
optimizer that never steps while the other network trains is named; findings follow the lifecycle."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbdebug
from tests import gan_loops as L


class IgnoresNoise(nn.Module):
    """A generator whose forward drops z (a conditional G wired to a constant): the same sample for every z."""

    def __init__(self, nz: int = 8) -> None:
        super().__init__()
        self.net = L.mlp_g(nz)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.zeros_like(z))


@pytest.mark.slow
def test_a_generator_that_ignores_its_noise_is_mode_collapse_at_its_first_step():
    torch.manual_seed(0)
    D, G = L.mlp_d(), IgnoresNoise()
    od, og = L.adam(D), L.adam(G)
    with nbdebug.watch_gan(D, G, od, og) as g:
        L.train(D, G, od, og, L.mixture(), steps=30)
    f = next(f for f in g.findings if f.code == "gan-mode-collapse")
    assert f.severity == "error" and f.evidence["ignores_noise"] and g.found_at("gan-mode-collapse") == 1
    assert f.evidence["sample_diversity"] < 1e-3 and "independent noise" in f.message
    assert g.internal_errors == []


@pytest.mark.slow
def test_a_narrow_but_noise_dependent_generator_is_not_collapse():
    """An untrained G is narrow (a few % of the real spread), never identical: silent at step 1."""
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    od, og = L.adam(D), L.adam(G)
    with nbdebug.watch_gan(D, G, od, og) as g:
        L.train(D, G, od, og, L.mixture(), steps=12)
    assert g.history["sample_diversity"].iloc[0] > 1e-3
    assert [f for f in g.findings if f.severity != "info"] == []


def test_a_discriminator_optimizer_that_never_steps_is_named():
    """DeepFill v2's WGAN trainer: loss_D.backward() runs, optimizer_d.step() is missing."""
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    od, og = L.adam(D), L.adam(G)
    bce = nn.BCEWithLogitsLoss()
    with nbdebug.watch_gan(D, G, od, og, names=("netD", "netG", "optD", "optG")) as g:
        for real in L.batches(L.mixture(), 64, 15):
            od.zero_grad()
            fake = G(torch.randn(64, 8))
            (bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))).backward()
            og.zero_grad()
            bce(D(fake), torch.ones(64, 1)).backward()
            og.step()
    f = next(f for f in g.findings if f.code == "optimizer-never-steps")
    assert f.where == "optD" and "optD.step()" in f.hint and f.evidence["other_steps"] == 15
    assert g.d_steps == 0 and g.found_at("optimizer-never-steps") == 10


def _rows(p: float, signal: float, n: int = 3) -> list[dict]:
    return [{"step": i + 1, "d_fake_g": p, "g_signal": signal, "g_grad_norm": 1.0} for i in range(n)]


def test_the_saturating_generator_loss_is_recognised_by_its_gradient():
    """A mean-reduced log(1 - D(G(z))) puts exactly D(G(z)) on D's logits (summed over the fakes), the
    non-saturating loss 1 - D(G(z)): on 3 G steps with D(G(z)) < 0.3 that names the saturating loss."""
    from nbdebug.monitor.gan_checks import check_g_vanishing

    D, G = L.mlp_d(), L.mlp_g()
    g = nbdebug.watch_gan(D, G, L.adam(D), L.adam(G))
    f = check_g_vanishing(_rows(0.2, 0.2 * 1.019), g)
    assert f is not None and f.evidence["saturating_loss"] and f.where == "G" and "4.0x" in f.message
    assert check_g_vanishing(_rows(0.2, 0.2 * 1.03), g) is None  # 3% off: not that form
    assert check_g_vanishing(_rows(0.2, 0.8), g) is None  # the non-saturating loss
    assert check_g_vanishing(_rows(0.31, 0.31), g) is None  # where the two losses are too close to tell
    assert check_g_vanishing(_rows(0.2, 0.2, n=2), g) is None  # two steps are not persistence
