"""watch_gan on real tiny GANs: each planted bug is named with its catalogue code, healthy runs are silent,
and the numbers it reports are the ones PyTorch computes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug.monitor import gan_checks as gan_module
from tests import gan_loops as L


@pytest.fixture(autouse=True)
def _one_thread():
    """The test machine is shared: one thread is faster than two contending ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def mixture_gan(d_lr: float = 2e-4, g_lr: float = 2e-4, probabilities: bool = False):
    D, G = L.mlp_d(sigmoid=probabilities), L.mlp_g()
    return D, G, L.adam(D, d_lr), L.adam(G, g_lr)


def watched(D, G, od, og, data, steps, watch_kw=None, **kw):
    with nbdebug.watch_gan(D, G, od, og, **(watch_kw or {})) as g:
        L.train(D, G, od, og, data, steps=steps, nz=kw.pop("nz", 8), **kw)
    assert g.internal_errors == []
    return g


def serious(g) -> list[str]:
    return [f"{f.code} [{f.where}]: {f.message}" for f in g.findings if f.severity != "info"]


def codes(g) -> dict[str, str | None]:
    return {f.code: f.where for f in g.findings}


# -- healthy runs ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_healthy_mixture_gan_has_no_findings_and_a_full_history():
    D, G, od, og = mixture_gan()
    g = watched(D, G, od, og, L.mixture(), steps=300)
    assert g.findings == [], serious(g)
    h = g.history
    assert len(h) == 300 and g.steps == 300 and g.d_steps == 300
    assert (h["d_steps"] == 1).all()
    for col in ("d_real", "d_fake", "d_fake_g"):
        assert h[col].between(0, 1).all()
    assert h[["d_loss", "g_loss", "d_grad_norm", "g_grad_norm"]].notna().all().all()
    assert h["d_ratio"].notna().sum() == 35  # sampled on the first 5 steps and every 10th step
    # the sample grid: step 1 and every 25 G steps, from the same fixed noise batch
    assert [f.step for f in g.frames] == [1, *range(25, 301, 25)]
    assert all(f.samples.shape == (64, 2) for f in g.frames)
    # G learns to spread towards the ring: diversity grows from its narrow start
    div = h["diversity"].dropna()
    assert div.iloc[-1] > 3 * div.iloc[0]


@pytest.mark.slow
def test_healthy_dcgan_on_digits_yields_no_warning():
    torch.manual_seed(0)
    D, G = L.dcgan_d(), L.dcgan_g()
    od, og = L.adam(D), L.adam(G)
    g = watched(D, G, od, og, L.digits(), steps=200, nz=16)
    assert serious(g) == []
    assert g.frames[-1].samples.shape == (64, 1, 8, 8)
    assert g.history["diversity"].dropna().min() > 0.5


# -- the missing optG.zero_grad() bug ----------------------------------------------------------------------------
def test_missing_generator_zero_grad_is_named_within_a_few_steps():
    D, G, od, og = mixture_gan()
    g = watched(D, G, od, og, L.mixture(), steps=20, zero_g=False)
    assert codes(g).get("grad-not-zeroed") == "g_optimizer"
    assert g.found_at("grad-not-zeroed") <= 3
    f = next(f for f in g.findings if f.code == "grad-not-zeroed")
    assert f.severity == "error" and f.message.startswith("generator (G, optimizer g_optimizer)")
    assert "g_optimizer.zero_grad()" in f.hint
    # D's .grad is filled by G's backward every iteration, but d_optimizer.zero_grad() clears it: no leak
    assert (g.history["d_leaked"] == 0).all() and (g.history["g_leaked"][1:] > 0).all()


def test_d_leak_is_reported_only_when_it_reaches_d_optimizer_step():
    """G's backward fills D's .grad (PyTorch does); only a missing d_optimizer.zero_grad() leaks it."""
    D, G, od, og = mixture_gan()
    x = L.mixture()
    seen_filled = []
    with nbdebug.watch_gan(D, G, od, og) as g:
        for real in L.batches(x, 64, 15):
            z = torch.randn(64, 8)
            fake = G(z)
            loss_d = nn.functional.binary_cross_entropy_with_logits(D(real), torch.ones(64, 1))
            loss_d = loss_d + nn.functional.binary_cross_entropy_with_logits(
                D(fake.detach()), torch.zeros(64, 1)
            )
            loss_d.backward()  # no od.zero_grad(): the G step's gradient on D leaks into this step
            od.step()
            og.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(D(fake), torch.ones(64, 1)).backward()
            seen_filled.append(D[0].weight.grad.abs().sum().item() > 0)
            og.step()
    assert all(seen_filled)
    assert codes(g).get("grad-not-zeroed") == "d_optimizer"
    assert [f.where for f in g.findings if f.code == "grad-not-zeroed"] == ["d_optimizer"]


@pytest.mark.slow
def test_missing_zero_grad_on_digits_collapses_d_and_the_cause_is_ranked_first():
    torch.manual_seed(0)
    D, G = L.dcgan_d(), L.dcgan_g()
    od, og = L.adam(D), L.adam(G)
    g = watched(D, G, od, og, L.digits(), steps=130, nz=16, zero_g=False)
    c = codes(g)
    assert c["grad-not-zeroed"] == "g_optimizer" and c["gan-d-collapse"] == "D"
    collapse = next(f for f in g.findings if f.code == "gan-d-collapse")
    assert collapse.evidence["hints"][0].startswith("the generator's optimizer is never zeroed")
    assert "1) the generator's optimizer is never zeroed" in collapse.hint
    assert g.found_at("grad-not-zeroed") < g.found_at("gan-d-collapse")


# -- other failure modes -------------------------------------------------------------------------------
def test_overpowered_discriminator_collapses_and_the_lr_ratio_is_the_first_hint():
    D, G, od, og = mixture_gan(d_lr=2e-2)
    g = watched(D, G, od, og, L.mixture(), steps=40)
    f = next(f for f in g.findings if f.code == "gan-d-collapse")
    assert f.where == "D" and g.found_at("gan-d-collapse") <= 15
    assert f.evidence["d_real"] > 0.95 and f.evidence["d_fake"] < 0.05
    assert f.evidence["hints"][0].startswith("D's learning rate is 100x G's")
    assert "grad-not-zeroed" not in codes(g)


def test_saturating_generator_loss_vanishes_when_d_wins():
    D, G, od, og = mixture_gan(d_lr=2e-2)
    g = watched(D, G, od, og, L.mixture(), steps=80, saturating=True)
    c = codes(g)
    assert c.get("gan-g-vanishing") == "G" and "gan-d-collapse" in c
    f = next(f for f in g.findings if f.code == "gan-g-vanishing")
    assert f.evidence["signal"] < 0.01 * f.evidence["early"] and f.evidence["d_fake_g"] < 0.05
    # the signal is what autograd puts on D's logits: sum over fakes of |d mean(log(1 - sigmoid(l))) / dl|
    assert g.history["g_signal"].iloc[-1] == pytest.approx(g.history["d_fake_g"].iloc[-1], rel=1e-3)
    # the non-saturating loss on the same overpowered D keeps G's gradient alive
    D, G, od, og = mixture_gan(d_lr=2e-2)
    assert "gan-g-vanishing" not in codes(watched(D, G, od, og, L.mixture(), steps=80))


def test_one_noise_vector_per_batch_is_mode_collapse():
    D, G, od, og = mixture_gan()
    g = watched(D, G, od, og, L.mixture(), steps=40, noise_once=True, watch_kw={"samples_every": 10})
    f = next(f for f in g.findings if f.code == "gan-mode-collapse")
    assert f.where == "G" and f.evidence["shared_noise"]
    assert f.evidence["diversity"] < 1e-6 < f.evidence["sample_diversity"]
    assert "torch.randn(batch_size, nz)" in f.hint


@pytest.mark.slow
def test_diversity_lost_during_training_is_mode_collapse():
    """Without G's zero_grad the generator overshoots onto a point: 24% of the real spread -> <1%."""
    D, G, od, og = mixture_gan()
    g = watched(D, G, od, og, L.mixture(), steps=300, zero_g=False)
    f = next(f for f in g.findings if f.code == "gan-mode-collapse")
    assert not f.evidence["shared_noise"] and f.evidence["highest"] > 5 * f.evidence["diversity"]


def test_sigmoid_bceloss_is_advice_and_probabilities_are_read_as_such():
    torch.manual_seed(0)
    a = watched(*mixture_gan(probabilities=True), L.mixture(), steps=5, probabilities=True)
    torch.manual_seed(0)
    b = watched(*mixture_gan(), L.mixture(), steps=5)
    assert a.d_outputs == "probability" and b.d_outputs == "logit"
    assert [(f.code, f.severity) for f in a.findings] == [("sigmoid-bceloss", "info")]
    assert b.findings == []
    # same weights, D ends in Sigmoid vs returns logits: the same D(x) either way
    assert a.history["d_real"].iloc[0] == pytest.approx(b.history["d_real"].iloc[0], abs=1e-6)


def test_nonfinite_real_batch_is_named():
    D, G, od, og = mixture_gan()
    x = L.mixture()
    x[70:80] = float("nan")  # in the second batch of the first epoch's order, somewhere
    g = watched(D, G, od, og, x, steps=20)
    f = next(f for f in g.findings if f.code == "nonfinite")
    assert f.severity == "error" and f.message.startswith("discriminator")


def test_tiny_generator_learning_rate_is_lr_too_low():
    D, G, od, og = mixture_gan(g_lr=1e-8)
    g = watched(D, G, od, og, L.mixture(), steps=45)
    assert codes(g).get("lr-too-low") == "g_optimizer"
    assert [f.where for f in g.findings if f.code == "lr-too-low"] == ["g_optimizer"]


# -- the numbers are PyTorch's ---------------------------------------------------------------------------
def test_losses_and_probabilities_match_what_the_loop_computes():
    D, G, od, og = mixture_gan()
    x = L.mixture()
    bce = nn.BCEWithLogitsLoss()
    mine = []
    with nbdebug.watch_gan(D, G, od, og) as g:
        for real in L.batches(x, 64, 6):
            z = torch.randn(64, 8)
            od.zero_grad()
            fake = G(z)
            out_real, out_fake = D(real), D(fake.detach())
            loss_d = bce(out_real, torch.ones(64, 1)) + bce(out_fake, torch.zeros(64, 1))
            loss_d.backward()
            od.step()
            og.zero_grad()
            out_g = D(fake)
            loss_g = bce(out_g, torch.ones(64, 1))
            loss_g.backward()
            og.step()
            p = lambda t: torch.sigmoid(t).mean().item()  # noqa: E731
            mine.append((loss_d.item(), loss_g.item(), p(out_real), p(out_fake), p(out_g)))
    h = g.history
    got = h[["d_loss", "g_loss", "d_real", "d_fake", "d_fake_g"]].to_numpy()
    assert got == pytest.approx(torch.tensor(mine).numpy(), rel=1e-5)


def test_fixed_noise_samples_are_g_of_that_noise():
    D, G, od, og = mixture_gan()
    noise = torch.randn(16, 8)
    g = watched(D, G, od, og, L.mixture(), steps=50, watch_kw={"noise": noise})
    assert g.frames[-1].step == 50 and g.frames[-1].samples.shape == (16, 2)
    with torch.no_grad():
        assert torch.equal(g.frames[-1].samples, G(noise))
    assert not torch.equal(g.frames[0].samples, g.frames[-1].samples)


def test_several_d_steps_per_g_step_are_one_row():
    D, G, od, og = mixture_gan()
    x = L.mixture()
    bce = nn.BCEWithLogitsLoss()
    with nbdebug.watch_gan(D, G, od, og) as g:
        it = L.batches(x, 64, 12)
        for _ in range(4):
            for _ in range(3):  # n_critic = 3
                real = next(it)
                od.zero_grad()
                (
                    bce(D(real), torch.ones(64, 1))
                    + bce(D(G(torch.randn(64, 8)).detach()), torch.zeros(64, 1))
                ).backward()
                od.step()
            og.zero_grad()
            bce(D(G(torch.randn(64, 8))), torch.ones(64, 1)).backward()
            og.step()
    h = g.history
    assert list(h["d_steps"]) == [3, 3, 3, 3] and g.d_steps == 12 and g.steps == 4
    assert g.findings == []


def test_layer_stats_per_network_have_the_monitor_columns():
    D, G, od, og = mixture_gan()
    g = watched(D, G, od, og, L.mixture(), steps=11)
    d, gen = g.layer_stats("D"), g.layer_stats("generator")
    assert set(d["layer"]) == {"0", "2", "4"} | {"1", "3"} and sorted(d["step"].unique()) == [
        1,
        2,
        3,
        4,
        5,
        10,
    ]
    assert gen["update_ratio"].dropna().between(1e-5, 1e-1).all()
    with pytest.raises(NbdebugError, match="net must be 'D'"):
        g.layer_stats("X")


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_arguments_name_the_culprit():
    D, G, od, og = mixture_gan()
    with pytest.raises(
        NbdebugError, match=r"d_optimizer holds 6 parameters, none of them the discriminator's .*swapped"
    ):
        nbdebug.watch_gan(D, G, og, od)
    with pytest.raises(NbdebugError, match="needs an nn.Module as generator"):
        nbdebug.watch_gan(D, "G", od, og)
    with pytest.raises(NbdebugError, match="samples_every must be a positive integer, got 0"):
        nbdebug.watch_gan(D, G, od, og, samples_every=0)
    with pytest.raises(NbdebugError, match=r"noise must be a batch .* got shape \(\)"):
        nbdebug.watch_gan(D, G, od, og, noise=torch.tensor(1.0))
    with pytest.raises(NbdebugError, match="real must be a tensor of at least 2"):
        nbdebug.watch_gan(D, G, od, og, real=[1, 2])


@pytest.mark.slow
def test_result_renders_without_a_kernel():
    D, G, od, og = mixture_gan(d_lr=2e-2)
    g = watched(D, G, od, og, L.mixture(), steps=30)
    bundle = g._repr_mimebundle_()
    assert (
        "gan-d-collapse" in bundle["text/plain"]
        and "GanWatch (finished): 30 D steps, 30 G steps" in bundle["text/plain"]
    )
    assert 'data-code="gan-d-collapse"' in bundle["text/html"] and bundle["text/html"].count("<img") == 2
    assert math.isfinite(g.history["d_loss"].iloc[-1])


class ConditionalG(nn.Module):
    """G(z, labels): the fixed noise alone is not enough to call it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(4, 8)
        self.net = L.mlp_g()

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(z + self.embed(labels))


def conditional_run(watch_kw):
    D, G = L.mlp_d(), ConditionalG()
    od, og = L.adam(D), L.adam(G)
    bce = nn.BCEWithLogitsLoss()
    with nbdebug.watch_gan(D, G, od, og, samples_every=5, **watch_kw) as g:
        for real in L.batches(L.mixture(), 32, 10):
            labels = torch.randint(0, 4, (32,))
            od.zero_grad()
            fake = G(torch.randn(32, 8), labels)
            (bce(D(real), torch.ones(32, 1)) + bce(D(fake.detach()), torch.zeros(32, 1))).backward()
            od.step()
            og.zero_grad()
            bce(D(fake), torch.ones(32, 1)).backward()
            og.step()
    return g


def test_conditional_generator_needs_its_noise_tuple_and_says_so():
    g = conditional_run({})
    assert g.frames == [] and "G(fixed noise (64, 8)) failed with TypeError" in g.sampling_error
    assert "pass noise=" in repr(g) and g.findings == [] and g.steps == 10
    g = conditional_run({"noise": (torch.randn(12, 8), torch.arange(12) % 4)})
    assert g.sampling_error is None and [f.step for f in g.frames] == [1, 5, 10]
    assert g.frames[0].samples.shape == (12, 2)


def test_wasserstein_critic_scores_are_not_read_as_a_collapse():
    """A critic separating real and fake by a wide margin is WGAN working, not D winning a BCE game."""
    D, G, od, og = mixture_gan(d_lr=2e-2)
    with nbdebug.watch_gan(D, G, od, og) as g:
        for real in L.batches(L.mixture(), 64, 120):
            od.zero_grad()
            fake = G(torch.randn(64, 8))
            (D(fake.detach()).mean() - D(real).mean()).backward()
            od.step()
            og.zero_grad()
            (-D(fake).mean()).backward()
            og.step()
    assert not g.d_probabilities and g.d_outputs == "logit"
    # sigmoid(score) separates as a BCE collapse would: the rule would fire if it were applied
    assert gan_module.check_d_collapse(g._rows, g, set()) is not None
    assert "gan-d-collapse" not in codes(g) and "gan-g-vanishing" not in codes(g)


def _loop_variant(kind: str, D, G, od, og, steps: int = 40) -> None:
    """Standard GAN loops written the other usual ways; each must read the same way."""
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    for real in L.batches(L.mixture(), 64, steps):
        z = torch.randn(64, 8)
        if kind == "g_first":  # G step before D step
            og.zero_grad()
            bce(D(G(z)), ones).backward()
            og.step()
        if kind == "no_grad_fake":  # fake for D made under no_grad, regenerated for G
            with torch.no_grad():
                fake = G(z)
        else:
            fake = G(z)
        D.zero_grad() if kind == "module_zero_grad" else od.zero_grad()
        if kind == "one_backward":
            ((bce(D(real), ones) + bce(D(fake.detach()), zeros)) / 2).backward()
        else:
            bce(D(real), ones).backward()
            bce(D(fake.detach()), zeros).backward()
        od.step()
        if kind == "g_first":
            continue
        if kind == "freeze_d":
            D.requires_grad_(False)
        G.zero_grad() if kind == "module_zero_grad" else og.zero_grad()
        out = D(G(z)) if kind == "no_grad_fake" else D(fake)
        bce(out, ones).backward()
        og.step()
        if kind == "freeze_d":
            D.requires_grad_(True)


@pytest.mark.parametrize("kind", ["g_first", "no_grad_fake", "module_zero_grad", "one_backward", "freeze_d"])
def test_usual_loop_variants_are_read_correctly_and_stay_silent(kind):
    D, G, od, og = mixture_gan()
    with nbdebug.watch_gan(D, G, od, og) as g:
        _loop_variant(kind, D, G, od, og)
    assert g.internal_errors == [] and g.findings == [], serious(g)
    h = g.history
    assert g.steps == 40 and g.d_steps == 40
    # D(x) and D(G(z)) are read from D's own forward passes in every D and G step
    # (G first: D's steps land in the next row, and the last D step gets a row of its own at exit)
    assert len(h) == (41 if kind == "g_first" else 40) and h["g_loss"].notna().sum() == 40
    assert (
        h["d_real"].notna().sum() == 40
        and h["d_fake"].notna().sum() == 40
        and h["d_loss"].notna().sum() == 40
    )
    assert h.loc[h["g_loss"].notna(), "d_fake_g"].notna().all()
