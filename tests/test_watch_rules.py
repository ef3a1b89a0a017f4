"""The edges of the rules that read the loss next to another statistic, as pure functions of `RunData`:
just below and just above what makes each one fire (the real loops are in test_watch_evidence.py and
test_watch_lifecycle.py)."""

from __future__ import annotations

import math

from nbdebug.monitor.checks import check_activations, diagnose
from nbdebug.monitor.loss_checks import _falls
from nbdebug.monitor.losscalls import LossCall
from nbdebug.monitor.lr_checks import check_learning_rate
from nbdebug.monitor.records import LayerSample, StepRecord
from nbdebug.monitor.rundata import RunData


def _call(name: str = "cross_entropy", baseline: float = math.log(10), value: float = 2.3) -> LossCall:
    return LossCall(name, 1, value, (32, 10), (32,), -1.0, 1.0, False, "", "mean", False, 10, baseline)


def _run(losses: list[float], ratios: dict[int, float] | None = None, dead: dict[int, float] | None = None,
         calls: list[LossCall] | None = None) -> RunData:  # fmt: skip
    steps = [StepRecord(step=i + 1, loss=v, grad_norm=1.0) for i, v in enumerate(losses)]
    samples: dict[int, list[LayerSample]] = {}
    for k, r in (ratios or {}).items():
        samples.setdefault(k, []).append(
            LayerSample(step=k, layer="fc", type="Linear", update_ratio=r, grad_norm=0.1)
        )
    for k, d in (dead or {}).items():
        samples.setdefault(k, []).append(LayerSample(step=k, layer="relu", type="ReLU", dead_frac=d, rows=32))
    return RunData(
        steps=steps,
        samples=samples,
        layer_order=["fc", "relu"],
        input_stats=[],
        nonfinite_events=[],
        leaked_params={},
        never_grad=set(),
        n_params=2,
        loss_calls=calls if calls is not None else [_call()],
        sample_steps=sorted(samples),
    )


def test_huge_updates_after_which_nothing_is_learned_are_lr_too_high():
    """Ratios above 0.1 on 3 samples, then 30 steps at >= 90% of chance (ln 10): lr-too-high. At 0.09,
    or with the loss below 90% of chance, it is not."""
    flat = [2.3] * 40
    fired = list(check_learning_rate(_run(flat, {2: 0.2, 3: 0.15, 4: 0.11, 10: 0.004, 20: 0.004})))
    assert [f.code for f in fired] == ["lr-too-high"] and fired[0].evidence["first_step"] == 2
    assert list(check_learning_rate(_run(flat, {2: 0.2, 3: 0.15, 4: 0.09, 10: 0.004, 20: 0.004}))) == []
    learned = [2.3] * 10 + [0.9 * math.log(10) - 0.01] * 30
    assert list(check_learning_rate(_run(learned, {2: 0.2, 3: 0.15, 4: 0.11, 10: 0.004, 20: 0.004}))) == []
    assert list(check_learning_rate(_run([2.3] * 25, {2: 0.2, 3: 0.15, 4: 0.11}))) == []  # too few steps yet


def test_tiny_updates_are_lr_too_low_only_far_from_convergence():
    """Ratios under 1e-5: lr-too-low while the loss is above 30% of its start; a converged run (tiny
    gradients, tiny updates) is silent."""
    tiny = {10: 5e-6, 20: 5e-6, 30: 5e-6}
    assert [f.code for f in check_learning_rate(_run([2.3] * 40, tiny))] == ["lr-too-low"]
    converged = [2.3] * 5 + [0.5] * 35
    assert list(check_learning_rate(_run(converged, tiny))) == []
    assert list(check_learning_rate(_run([2.3] * 40, {10: 2e-5, 20: 5e-6, 30: 5e-6}))) == []


def test_a_steady_descent_is_not_a_flat_loss():
    """Period means falling on a significant line by >= 1% over the periods: not flat. Noise, a tiny
    descent, or 3 periods only: the flat-loss rule decides."""
    assert _falls([(2.306 - 0.002 * i, 0.004, 22) for i in range(21)])  # the quickstart tutorial
    assert not _falls([(2.306 - 0.0001 * i, 0.004, 22) for i in range(21)])  # 0.09% over the run
    assert not _falls([(2.30, 0.1, 25), (2.31, 0.1, 25), (2.29, 0.1, 25), (2.30, 0.1, 25)])
    assert not _falls([(2.3, 0.1, 25), (2.2, 0.1, 25), (2.1, 0.1, 25)])  # 3 points line up too easily


def test_dead_units_while_the_loss_falls_are_advice_and_no_lr_story():
    """>= 70% dead on 3 samples with the loss below half its start: info, and the high ratios before do
    not turn it into lr-too-high; the same with a flat loss is the learning rate's doing."""
    ratios = {2: 0.05, 3: 0.05, 4: 0.05, 5: 0.05, 10: 0.01, 20: 0.01, 30: 0.01}
    dead = {2: 0.1, 3: 0.1, 4: 0.1, 5: 0.1, 10: 0.8, 20: 0.8, 30: 0.8}
    learning = diagnose(_run([2.3] * 5 + [0.5] * 25, ratios, dead))
    assert [(f.code, f.severity) for f in learning] == [("dead-relu", "info")]
    flat = diagnose(_run([2.3] * 30, ratios, dead))
    assert [f.code for f in flat] == ["lr-too-high"] and flat[0].evidence["layers"] == ["relu"]


def test_dead_units_after_an_unscaled_first_loss_are_not_blamed_on_the_learning_rate():
    """A first loss 100x what predicting the mean scores (unscaled regression targets) made the first
    updates huge: the saturated or dead layer says so instead of lr-too-high."""
    ratios = {2: 0.5, 3: 0.5, 4: 0.5, 5: 0.5}
    dead = {2: 0.1, 3: 0.9, 4: 0.9, 5: 0.9}
    mse = LossCall("mse_loss", 1, 7e6, (32, 1), (32, 1), -1.0, 1.0, False, "", "mean", False, None, 2.8e3)
    found = diagnose(_run([7e6, 3e6, 2e6, 2e6, 2e6], ratios, dead, calls=[mse]))
    assert [f.code for f in found] == ["dead-relu"] and "unscaled targets" in found[0].message


def test_the_layer_must_be_seen_on_the_latest_sample():
    """A layer used only on some forward passes is judged where it was last seen, not from stale rows."""
    run = _run([2.3] * 20, dead={1: 1.0, 2: 1.0, 3: 1.0})
    run.samples[10] = [LayerSample(step=10, layer="fc", type="Linear", grad_norm=0.1)]
    run.sample_steps = sorted(run.samples)
    assert list(check_activations(run)) == []
