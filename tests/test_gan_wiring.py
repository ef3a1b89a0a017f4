"""`optimizer-wrong-network` (issue 15 item 1): a GAN network stepped with an optimizer that holds the
other network's parameters is a finding, the user's loop runs to its end, and what PyTorch really did
(D's weights never moved, G's moved by D's loss) is what the finding says. Two optimizers of their own,
and parameters D and G share, stay silent; optimizers passed in the wrong order stay a clear error."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug.monitor.gan_wiring import wrong_network_findings
from tests import gan_loops as L
from tests.watch_loops import single_thread  # noqa: F401  (autouse fixture)


def run(D, G, opt_d, opt_g, steps: int = 12):
    """The DCGAN-order loop stepping `opt_d` in D's phase and `opt_g` in G's, under watch_gan."""
    with nbdebug.watch_gan(D, G, opt_d, opt_g) as g:
        L.train(D, G, opt_d, opt_g, L.mixture(), steps=steps)
    assert g.internal_errors == []
    return g


def wrong(g):
    return [f for f in g.findings if f.code == "optimizer-wrong-network"]


def test_g_optimizer_passed_as_d_optimizer_is_named_and_d_really_never_trains():
    """SRGAN-PyTorch#85: train(..., g_optimizer, g_optimizer, ...)."""
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    opt_g = L.adam(G)
    before = [p.detach().clone() for p in D.parameters()]
    g = run(D, G, opt_g, opt_g)
    (f,) = wrong(g)
    assert f.severity == "error" and f.where == "d_optimizer" and g.found_at(f.code) == 1
    assert f.evidence == {"network": "D", "own": 0, "other": 6, "held": 6, "same": True}
    assert "same optimizer" in f.message and "D never trains" in f.message
    assert all(torch.equal(a, b) for a, b in zip(before, D.parameters()))
    # D never steps: that is this finding's story, not a second one
    assert "optimizer-never-steps" not in {x.code for x in g.findings}
    assert g.steps == 24  # every step of the shared optimizer is a G step: the loop was watched to its end


def test_one_optimizer_over_both_networks_is_named_with_both_counts():
    """MAE_GAN#1: one optimizer over the whole model steps D's loss and G's."""
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    both = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=2e-4, betas=(0.5, 0.999))
    g = run(D, G, both, both)
    (f,) = wrong(g)
    assert f.evidence["own"] == 6 and f.evidence["other"] == 6 and f.evidence["same"]
    assert "D's loss also steps G" in f.message


def test_a_separate_d_optimizer_over_both_networks_is_named_and_g_optimizer_is_not():
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    opt_d = torch.optim.Adam([*D.parameters(), *G.parameters()], lr=2e-4)
    g = run(D, G, opt_d, L.adam(G))
    (f,) = wrong(g)
    assert f.where == "d_optimizer" and not f.evidence["same"]
    assert g.d_steps == 12  # D has its optimizer's steps: it is watched as usual


def test_own_optimizers_and_shared_parameters_are_silent():
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    g = run(D, G, L.adam(D), L.adam(G), steps=20)
    assert wrong(g) == [] and g.d_steps == 20
    # a module both networks use: its parameters belong to both, each optimizer may hold them
    shared = nn.Linear(2, 2)
    D = nn.Sequential(shared, nn.LeakyReLU(0.2), nn.Linear(2, 1))
    G = nn.Sequential(nn.Linear(8, 2), shared)
    names = ("D", "G", "d_optimizer", "g_optimizer")
    assert wrong_network_findings(D, G, L.adam(D), L.adam(G), names) == []
    # ... but G's own layer in D's optimizer is G's
    opt_d = torch.optim.Adam([*D.parameters(), *G[0].parameters()])
    (f,) = wrong_network_findings(D, G, opt_d, L.adam(G), names)
    assert f.evidence["own"] == 4 and f.evidence["other"] == 2


def test_optimizers_passed_in_the_wrong_order_are_still_an_error():
    D, G = L.mlp_d(), L.mlp_g()
    with pytest.raises(NbdebugError, match=r"none of them the discriminator's .*swapped.*watch_gan\(D, G"):
        nbdebug.watch_gan(D, G, L.adam(G), L.adam(D))


def test_watching_a_wrongly_wired_gan_changes_nothing_it_trains():
    """Same seed, same weights with and without watch_gan, on the SRGAN bug (the shared optimizer)."""

    def weights(watched: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        D, G = L.mlp_d(), L.mlp_g()
        opt_g = L.adam(G)
        if watched:
            run(D, G, opt_g, opt_g, steps=8)
        else:
            L.train(D, G, opt_g, opt_g, L.mixture(), steps=8)
        return [p.detach().clone() for p in [*D.parameters(), *G.parameters()]]

    assert all(torch.equal(a, b) for a, b in zip(weights(True), weights(False)))


def test_a_g_optimizer_that_also_holds_d_is_named_on_g_side():
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    opt_g = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=2e-4)
    g = run(D, G, L.adam(D), opt_g)
    (f,) = wrong(g)
    assert f.where == "g_optimizer" and f.evidence["network"] == "G" and f.evidence["other"] == 6
    assert "G's loss also steps D, training D to help G" in f.message
