"""nbdebug.search: draws on a log scale, reproducibility, failures, interrupts, and findings about the
search, checked on synthetic train_fns with a known optimum and on real PyTorch training."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug.search.effects import param_effects
from nbdebug.search.result import SearchResult
from nbdebug.search.run import search
from nbdebug.search.space import draw, trial_seed

OPT_LR = 3e-3


def peaked(lr: float, dropout: float = 0.0, act: str = "relu") -> float:
    """Validation score peaking at lr=3e-3 (a parabola in log10(lr)), independent of dropout and act,
    plus noise drawn from torch's RNG (so per-trial seeding matters)."""
    noise = 0.02 * torch.randn(()).item()
    return 1.0 - (math.log10(lr) - math.log10(OPT_LR)) ** 2 + noise


SPACE = {
    "lr": nbdebug.loguniform(1e-5, 1e-1),
    "dropout": nbdebug.uniform(0.0, 0.5),
    "act": nbdebug.choice(["relu", "tanh", "gelu"]),
}


def codes(result: SearchResult, severities=("error", "warning", "info")) -> list[str]:
    return [f.code for f in result.findings if f.severity in severities]


# -- distributions ---------------------------------------------------------------------------------


def test_loguniform_draws_each_decade_equally_often():
    lrs = np.array([p["lr"] for p in draw({"lr": nbdebug.loguniform(1e-5, 1e-1)}, 4000, seed=1)])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1
    per_decade = np.histogram(np.log10(lrs), bins=[-5, -4, -3, -2, -1])[0] / len(lrs)
    np.testing.assert_allclose(per_decade, 0.25, atol=0.03)  # a linear draw would put 90% in the top decade


def test_intlog_uniform_choice_draws():
    draws = draw(
        {
            "width": nbdebug.intlog(8, 512),
            "p": nbdebug.uniform(0.1, 0.5),
            "opt": nbdebug.choice("adam", "sgd"),
        },
        3000,
    )
    widths = np.array([d["width"] for d in draws])
    assert all(isinstance(d["width"], int) for d in draws)
    assert widths.min() == 8 and widths.max() == 512
    assert 0.4 < np.mean(widths < 64) < 0.6  # 64 is the geometric middle of [8, 512]
    ps = np.array([d["p"] for d in draws])
    assert ps.min() >= 0.1 and ps.max() <= 0.5 and abs(np.median(ps) - 0.3) < 0.02
    assert {d["opt"] for d in draws} == {"adam", "sgd"}
    assert nbdebug.choice(["a", "b"]) == nbdebug.choice("a", "b")


def test_list_in_space_is_a_choice():
    draws = draw({"act": ["relu", "tanh"]}, 50)
    assert {d["act"] for d in draws} == {"relu", "tanh"}


# -- reproducibility ----------------------------------------------------------------------------------


def test_same_seed_same_draws_and_scores_prefix_property():
    a, b = search(peaked, SPACE, trials=12, seed=7), search(peaked, SPACE, trials=12, seed=7)
    fa, fb = a.to_frame().drop(columns="seconds"), b.to_frame().drop(columns="seconds")
    assert fa.equals(fb)  # same params AND same noisy scores: each trial is seeded
    c = search(peaked, SPACE, trials=12, seed=8)
    assert not np.allclose(fa["lr"], c.to_frame()["lr"])
    assert draw(SPACE, 20, seed=7)[:12] == [t.params for t in a.trials]
    assert [t.seed for t in a.trials] == [trial_seed(7, i) for i in range(12)]


def test_replay_reproduces_a_trial_and_restores_rng():
    result = search(peaked, SPACE, trials=6, seed=3)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    for t in result.trials:
        assert result.replay(t.index) == pytest.approx(t.score, abs=1e-12)
    assert torch.equal(torch.rand(3), expected_next)  # replay left the caller's RNG where it was
    with pytest.raises(NbdebugError, match="trial index 6 out of range"):
        result.replay(6)


# -- the known optimum ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_known_optimum_on_log_scale(seed):
    result = search(peaked, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=25, seed=seed)
    best = result.best
    assert abs(math.log10(best.params["lr"]) - math.log10(OPT_LR)) < 0.3  # within a factor of 2
    assert result.best_params == best.params
    assert best.score == result.to_frame()["score"].max()
    # a healthy search: optimum inside the range, enough trials, nothing failed -> no warning or error
    assert codes(result, ("error", "warning")) == []


def test_healthy_search_with_irrelevant_parameters_only_gets_flat_advice():
    result = search(peaked, SPACE, trials=40, seed=0)
    assert codes(result, ("error", "warning")) == []
    flat = {f.where for f in result.findings if f.code == "search-flat-parameter"}
    assert flat == {"dropout", "act"}
    effects = param_effects(result)
    assert effects["lr"].effect > 3 and not effects["lr"].flat  # the parabola spans ~4 over [1e-5, 1e-1]
    assert effects["dropout"].effect < effects["dropout"].noise and effects["dropout"].noise < 0.05
    assert all(f.severity == "info" for f in result.findings)


@pytest.mark.parametrize("seed", range(5))
def test_secondary_parameter_that_matters_is_not_called_flat(seed):
    """lr dominates the score's variance, but momentum still moves it by ~1, far above the noise (0.05):
    a variance-share rule would call momentum flat; the effect-vs-noise rule must not."""

    def fn(lr, momentum, dropout):
        return -((math.log10(lr) + 2.5) ** 2) - 3 * (momentum - 0.6) ** 2 + 0.05 * torch.randn(()).item()

    space = {
        "lr": nbdebug.loguniform(1e-5, 1e-1),
        "momentum": nbdebug.uniform(0, 0.99),
        "dropout": nbdebug.uniform(0, 0.5),
    }
    result = search(fn, space, trials=40, seed=seed)
    flat = {f.where for f in result.findings if f.code == "search-flat-parameter"}
    assert "momentum" not in flat and "lr" not in flat
    assert abs(result.best.params["momentum"] - 0.6) < 0.3


def test_min_mode_for_loss_metric_and_extra_metrics_in_frame():
    def fn(lr):
        loss = (math.log10(lr) + 2) ** 2
        return {"val_loss": loss, "val_acc": 1 - loss / 10}

    result = search(fn, {"lr": nbdebug.loguniform(1e-4, 1)}, trials=15, metric="val_loss")
    assert result.mode == "min" and result.best.score == result.to_frame()["score"].min()
    frame = result.to_frame()
    assert "val_acc" in frame.columns and "val_loss" not in frame.columns  # the metric is the score column
    auto = search(lambda lr: {"val_acc": -lr}, {"lr": nbdebug.loguniform(1e-4, 1)}, trials=5)
    assert auto.metric == "val_acc" and auto.mode == "max"


# -- findings about the search ------------------------------------------------------------------------------


def test_edge_of_range_top_names_value_range_and_wider_range():
    def fn(lr):  # the optimum, 0.3, lies above the searched range
        return -((math.log10(lr) - math.log10(0.3)) ** 2)

    result = search(fn, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=20)
    (edge,) = [f for f in result.findings if f.code == "search-edge-of-range"]
    assert edge.severity == "warning" and edge.where == "lr"
    assert "is at the top of [1e-05, 0.1]" in edge.message
    assert f"best lr {result.best.params['lr']:.3g}" in edge.message
    assert "loguniform(1e-05, 10)" in edge.hint
    assert edge.evidence["side"] == "high" and edge.evidence["position"] >= 0.9


def test_edge_of_range_bottom_for_uniform_and_intlog():
    def fn(momentum, width):
        return -4 * momentum - 0.3 * abs(math.log2(width) - 8)  # best momentum 0 (bottom), width 256 inside

    result = search(
        fn, {"momentum": nbdebug.uniform(0.0, 0.99), "width": nbdebug.intlog(16, 4096)}, trials=30
    )
    edges = {f.where: f for f in result.findings if f.code == "search-edge-of-range"}
    assert set(edges) == {"momentum"} and result.best.params["momentum"] < 0.099
    assert "at the bottom of [0, 0.99]" in edges["momentum"].message


def test_too_few_trials_for_parameters():
    result = search(peaked, SPACE, trials=8, seed=0)
    (few,) = [f for f in result.findings if f.code == "search-too-few-trials"]
    assert few.severity == "warning"
    assert "8 completed trials for 3 searched parameters" in few.message
    assert f"1-0.95^8 = {1 - 0.95**8:.0%}" in few.message
    assert "run at least 30 trials" in few.hint


def test_failed_trials_recorded_search_goes_on_and_cluster_named():
    def fn(lr):
        if lr > 1e-2:
            return float("nan")  # "diverged"
        return peaked(lr)

    result = search(fn, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=30)
    frame = result.to_frame()
    bad = frame[frame.status == "failed"]
    assert len(frame) == 30 and len(bad) > 0 and (bad.lr > 1e-2).all()
    assert (bad.error == "score is nan").all() and bad.score.isna().all()
    assert frame.error.dtype == object and frame[frame.status == "ok"].error.isna().all()
    (f,) = [f for f in result.findings if f.code == "search-trials-failed"]
    assert f.severity == "warning" and f.where == "lr"
    assert f"every failure has lr >= {bad.lr.min():.3g}" in f.message
    assert "lower the top of the lr range" in f.hint


def test_exceptions_are_failed_trials_with_traceback_and_all_failed_is_error():
    def fn(lr):
        raise ValueError(f"bad lr {lr:.1e}")

    result = search(fn, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=4)
    assert [t.status for t in result.trials] == ["failed"] * 4
    assert result.trials[0].error.startswith("ValueError: bad lr")
    assert "raise ValueError" in result.trials[0].traceback
    assert result.best is None
    (f,) = [f for f in result.findings if f.code == "search-trials-failed"]
    assert f.severity == "error" and "4 of 4 trials failed" in f.message


# -- control: interrupt, stop, timeout, state ----------------------------------------------------------------


def test_keyboard_interrupt_keeps_finished_trials_and_restores_rng():
    calls = []

    def fn(lr):
        calls.append(lr)
        torch.rand(5)  # consumes the global RNG
        if len(calls) == 4:
            raise KeyboardInterrupt
        return peaked(lr)

    torch.manual_seed(42)
    expected = torch.rand(2)
    py_expected = random.Random(5).random()
    torch.manual_seed(42)
    random.seed(5)
    result = search(fn, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=10)
    assert torch.equal(torch.rand(2), expected) and random.random() == py_expected
    assert result.stopped_by == "interrupt" and not result.running
    assert [t.status for t in result.trials] == ["ok"] * 3 + ["stopped"] + ["pending"] * 6
    assert len(result.to_frame()) == 4
    assert "stopped by KeyboardInterrupt" in result.summary()


def test_keyboard_interrupt_in_an_observer_also_returns_the_result():
    class Slow:  # e.g. the panel drawing its scatter when the user interrupts the kernel
        def on_trial_start(self, result, trial):
            if trial.index == 2:
                raise KeyboardInterrupt

    result = search(peaked, SPACE, trials=6, observers=[Slow()])
    assert result.stopped_by == "interrupt" and len(result.completed) == 2
    assert result.trials[2].status == "stopped"


def test_rng_restored_after_success_and_after_contract_error():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    search(peaked, SPACE, trials=3)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(0)
    with pytest.raises(NbdebugError, match="train_fn returned NoneType None"):
        search(lambda lr: None, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=3)
    assert torch.equal(torch.rand(3), expected)


def test_observer_stop_request_and_events():
    events = []

    class Obs:
        def on_start(self, r):
            events.append("start")

        def on_trial_start(self, r, t):
            events.append(f"s{t.index}")

        def on_trial_end(self, r, t):
            events.append(f"e{t.index}:{t.status}")
            if t.index == 1:
                r.request_stop()

        def on_end(self, r):
            events.append("end")

    result = search(peaked, SPACE, trials=5, observers=[Obs()])
    assert events == ["start", "s0", "e0:ok", "s1", "e1:ok", "end"]
    assert result.stopped_by == "stop" and len(result.completed) == 2


def test_broken_observer_warns_and_search_completes():
    def bad(result, trial):
        raise RuntimeError("view bug")

    with pytest.warns(UserWarning, match="view bug"):
        result = search(peaked, SPACE, trials=3, observers=[bad])
    assert len(result.completed) == 3


def test_timeout_starts_no_new_trial():
    import time

    result = search(
        lambda lr: time.sleep(0.05) or lr, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=50, timeout=0.12
    )
    assert result.stopped_by == "timeout" and 2 <= len(result.completed) <= 4


# -- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "space, match",
    [
        ({"lr": 0.01}, r"space\['lr'\] is float 0.01; use nbdebug.loguniform"),
        ({}, "space must be a non-empty dict"),
        ([("lr", 1)], "space must be a non-empty dict of name -> distribution, got list"),
        ({"learning rate": nbdebug.uniform(0, 1)}, "'learning rate' must be a valid keyword"),
        ({"seed": nbdebug.intlog(1, 10)}, "space key 'seed' clashes with a column of the result"),
    ],
)
def test_bad_space(space, match):
    with pytest.raises(NbdebugError, match=match):
        search(peaked, space)


def test_bad_distributions_and_arguments():
    with pytest.raises(NbdebugError, match="loguniform needs 0 < low < high, got low=0, high=1"):
        nbdebug.loguniform(0, 1)
    with pytest.raises(NbdebugError, match="uniform needs low < high"):
        nbdebug.uniform(1, 1)
    with pytest.raises(NbdebugError, match="intlog low must be an int, got float"):
        nbdebug.intlog(1.5, 8)
    with pytest.raises(NbdebugError, match="choice needs at least one option"):
        nbdebug.choice([])
    with pytest.raises(NbdebugError, match="train_fn must be callable"):
        search("train", SPACE)
    with pytest.raises(NbdebugError, match="trials must be a positive int, got 0"):
        search(peaked, SPACE, trials=0)
    with pytest.raises(NbdebugError, match="mode must be 'max' or 'min'"):
        search(peaked, SPACE, mode="up")


def test_dict_without_known_metric_asks_for_metric():
    with pytest.raises(
        NbdebugError, match=r"returned metrics \['a', 'b'\]: say which one to optimize with metric="
    ):
        search(lambda lr: {"a": 1.0, "b": 2.0}, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=3)
    with pytest.raises(NbdebugError, match="without metric 'acc'"):
        search(lambda lr: {"a": 1.0}, {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=3, metric="acc")


def test_signature_mismatch_is_caught_before_any_trial():
    def train(lr, weight_decay):
        raise AssertionError("must not run")

    with pytest.raises(
        NbdebugError,
        match=r"train_fn train\(lr, weight_decay\) cannot be called with the space's parameters \['lr'\]: missing a required argument: 'weight_decay'",
    ):
        search(train, {"lr": nbdebug.loguniform(1e-5, 1e-1)})
    with pytest.raises(NbdebugError, match="unexpected keyword argument 'momentum'"):
        search(lambda lr: lr, {"lr": nbdebug.loguniform(1e-5, 1e-1), "momentum": nbdebug.uniform(0, 1)})
    search(lambda **kw: kw["lr"], {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=2)  # **kwargs takes anything


def test_nan_in_any_returned_metric_fails_the_trial():
    """A diverged model has a NaN loss but a finite (chance-level) accuracy: the trial failed."""
    result = search(
        lambda lr: {"val_acc": 0.1, "val_loss": float("nan")},
        {"lr": nbdebug.loguniform(1e-5, 1e-1)},
        trials=3,
    )
    assert result.metric == "val_acc"
    assert [t.status for t in result.trials] == ["failed"] * 3 and result.trials[0].error == "val_loss is nan"
    assert [f.code for f in result.findings] == ["search-trials-failed"]  # no too-few noise on top


def test_tensor_scores_are_accepted():
    result = search(lambda lr: torch.tensor(lr), {"lr": nbdebug.loguniform(1e-5, 1e-1)}, trials=3)
    assert all(isinstance(t.score, float) for t in result.trials)


# -- real PyTorch training --------------------------------------------------------------------------------------


def test_real_sgd_diverges_at_high_lr_and_finds_good_lr():
    """Full-batch SGD on least squares with unit-variance inputs: the loss's Hessian is 2*E[xx^T] ~ 2I,
    so gradient descent diverges for lr > 2/2 = 1 (to inf/NaN), and converges fastest near lr ~ 0.5."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g)

    def train(lr):
        model = nn.Linear(8, 1)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        for _ in range(60):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
        return {"val_loss": nn.functional.mse_loss(model(x), y).item()}

    result = search(train, {"lr": nbdebug.loguniform(1e-4, 1e2)}, trials=30)
    assert result.metric == "val_loss" and result.mode == "min"
    frame = result.to_frame()
    assert (frame[frame.status == "failed"].lr > 1.0).all() and (
        frame[frame.lr > 2.0].status == "failed"
    ).all()
    assert 0.1 < result.best.params["lr"] < 1.0 and result.best.score < 1e-3
    (f,) = [f for f in result.findings if f.code == "search-trials-failed"]
    assert f.where == "lr" and "every failure has lr >=" in f.message


def test_result_reprs_are_static():
    result = search(peaked, SPACE, trials=12)
    bundle = result._repr_mimebundle_()
    assert "best: trial" in bundle["text/plain"] and "search-too-few-trials" in bundle["text/plain"]
    html = bundle["text/html"]
    assert "data:image/png;base64" in html and 'class="nbdebug-search-trials"' in html
    assert html.count("nbdebug-best") == 1
    assert repr(result).startswith("<SearchResult 12/12 trials ok, best score=")
