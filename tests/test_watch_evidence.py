"""Decisions scaled to the strength of the evidence (issue 14 item 2): what is conclusive is named on the
first sampled step, weaker evidence has to persist, a short notebook run is diagnosed, and a causal chain
is told as one finding. Each rule is tested just below and just above what makes it conclusive, on real
loops (what PyTorch really does) and, for the exact edges, on the pure rule over a `RunData`."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug.monitor.blowup import find_blowup
from nbdebug.monitor.checks import check_activations, diagnose
from nbdebug.monitor.records import LayerSample, StepRecord
from nbdebug.monitor.rundata import RunData
from tests.watch_loops import (
    codes,
    digits,
    loader,
    mlp,
    serious,
    single_thread,  # noqa: F401  (autouse fixture)
    train,
)


def _short_run(model: nn.Module, lr: float = 0.05, epochs: int = 2, n: int = 256, bs: int = 32, **kw):
    """The notebook experiment of issue 14: 2 epochs of 8 steps."""
    x, y = digits()
    return train(
        model, torch.optim.SGD(model.parameters(), lr=lr, **kw), loader(x[:n], y[:n], bs), epochs=epochs
    )


def _run(steps: list[StepRecord], samples: dict[int, list[LayerSample]] | None = None, **kw) -> RunData:
    samples = samples or {}
    order: list[str] = []
    for rows in samples.values():
        for s in rows:
            if s.layer not in order:
                order.append(s.layer)
    return RunData(
        steps=steps,
        samples=samples,
        layer_order=order,
        input_stats=[],
        nonfinite_events=[],
        leaked_params={},
        never_grad=set(),
        n_params=4,
        loss_calls=[],
        sample_steps=sorted(samples),
        **kw,
    )


# -- dead units ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [-10.0, None])
def test_a_short_run_with_every_hidden_relu_dead_is_named_at_the_first_step(bias):
    """Issue 14 symptom 1: 16 steps, every hidden ReLU dead from the start, zero gradients below them:
    conclusive on the first sample. The same net without the bias is silent."""
    model = mlp()
    if bias is not None:
        with torch.no_grad():
            model[0].bias.fill_(bias)
            model[2].bias.fill_(bias)
    w = _short_run(model)
    assert w.steps == 16
    if bias is None:
        assert serious(w) == []
        return
    dead = [f for f in w.findings if f.code == "dead-relu"]
    assert dead and w.found_at("dead-relu") == 1
    f = dead[0]
    assert f.where == "1" and f.severity == "error" and f.evidence["conclusive"]
    assert "gradient of exactly 0" in f.message and "0" in f.message
    assert w.layer_stats().query("layer == '0'")["grad_norm"].eq(0.0).all()  # what the finding says


def _sample(step: int, layer: str, dead: float = math.nan, rows: int = 32, grad: float = math.nan, **kw):
    return LayerSample(step=step, layer=layer, type="ReLU", dead_frac=dead, rows=rows, grad_norm=grad, **kw)


def test_dead_relu_edges_of_conclusive_evidence():
    """Every unit dead with zero gradient upstream: at once. One unit alive, or a gradient still
    arriving upstream, or fewer than 8 rows: only persistence over 3 samples names it."""

    def run_at(dead: float, grad: float, rows: int = 32, n: int = 1) -> RunData:
        samples = {
            k: [_sample(k, "fc", grad=grad), _sample(k, "relu", dead=dead, rows=rows)]
            for k in range(1, n + 1)
        }
        return _run([StepRecord(step=k, loss=2.3) for k in range(1, n + 1)], samples)

    assert [f.code for f in check_activations(run_at(1.0, 0.0))] == ["dead-relu"]
    assert list(check_activations(run_at(0.99, 0.0))) == []  # one unit alive: not conclusive
    assert list(check_activations(run_at(1.0, 1e-3))) == []  # a gradient still reaches fc
    assert list(check_activations(run_at(1.0, 0.0, rows=4))) == []  # 4 rows prove nothing
    assert [f.code for f in check_activations(run_at(0.7, 1e-3, n=3))] == ["dead-relu"]  # persistent
    assert list(check_activations(run_at(0.69, 1e-3, n=3))) == []
    assert list(check_activations(run_at(0.99, 1e-3, n=2))) == []  # two samples are not persistence


# -- saturation --------------------------------------------------------------------------------------


class TanhNet(nn.Module):
    """An MLP whose tanh is called in forward (torch.tanh), as hand-written models do."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)
        with torch.no_grad():
            self.fc1.weight.mul_(gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


@pytest.mark.parametrize("gain", [12.0, 1.0])
def test_saturated_tanh_at_initialization_is_named_at_the_first_step(gain):
    """Issue 14 symptom 2, with a functional torch.tanh (no nn.Tanh to hook): most units in the flat
    tails before any update is conclusive; the default init is silent."""
    w = _short_run(TanhNet(gain))
    sat = [f for f in w.findings if f.code == "saturated-activation"]
    if gain == 1.0:
        assert sat == [] and serious(w) == []
        return
    assert [f.where for f in sat] == ["tanh(fc1)"] and w.found_at("saturated-activation") == 1
    row = w.layer_stats().query("step == 1 and layer == 'tanh(fc1)'").iloc[0]
    assert row["type"] == "torch.tanh" and row["saturated_frac"] > 0.5


def test_saturation_edges():
    """> 50% at initialization or >= 90% on one sample: at once; 50-90% later needs 3 samples in a row;
    the model's output activation is never judged (targets at 0/1 pin it on purpose)."""

    def run_at(values: list[float], first: int = 1, output: bool = False) -> RunData:
        samples = {
            first + i: [
                LayerSample(step=first + i, layer="t", type="Tanh", saturated_frac=v, is_output=output)
            ]
            for i, v in enumerate(values)
        }
        return _run([StepRecord(step=k, loss=1.0) for k in range(1, first + len(values))], samples)

    assert [f.code for f in check_activations(run_at([0.51]))] == ["saturated-activation"]
    assert list(check_activations(run_at([0.5]))) == []
    assert list(check_activations(run_at([0.89], first=10))) == []
    assert [f.code for f in check_activations(run_at([0.9], first=10))] == ["saturated-activation"]
    assert [f.code for f in check_activations(run_at([0.6, 0.6, 0.6], first=10))] == ["saturated-activation"]
    assert list(check_activations(run_at([0.6, 0.4, 0.6], first=10))) == []
    assert list(check_activations(run_at([0.99], output=True))) == []


def test_functional_activations_are_seen_once_and_named_after_their_input():
    """torch.relu / Tensor.sigmoid / F.relu in forward become layers named after what fed them; an
    nn.ReLU (which calls F.relu) stays one layer; the output activation is marked; training unchanged."""

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.act, self.b, self.c = (
                nn.Linear(64, 32),
                nn.ReLU(),
                nn.Linear(32, 16),
                nn.Linear(16, 10),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.act(self.a(x))
            h = torch.relu(self.b(h))
            return self.c(h).sigmoid()

    x, y = digits()
    results = []
    for watched in (True, False):
        torch.manual_seed(0)
        model = Mixed()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ctx = nbdebug.watch(model, opt) if watched else _Null()
        with ctx as w:
            for xb, yb in loader(x[:128], y[:128]):
                opt.zero_grad()
                F.mse_loss(model(xb), F.one_hot(yb, 10).float()).backward()
                opt.step()
        results.append([p.detach().clone() for p in model.parameters()])
        if watched:
            last = w.layer_stats().query("step == 1").set_index("layer")
            assert list(last.index) == ["a", "act", "b", "relu(b)", "c", "sigmoid(c)"]
            assert last.loc["relu(b)", "type"] == "torch.relu" and last.loc["act", "type"] == "ReLU"
            assert (
                bool(last.loc["sigmoid(c)", "is_output"]) and not last["is_output"].drop("sigmoid(c)").any()
            )
            assert w.internal_errors == []
    assert all(torch.equal(a, b) for a, b in zip(*results))


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


# -- blow-ups and chains --------------------------------------------------------------------------------


@pytest.mark.parametrize("lr", [0.5, 0.02])
def test_transient_blow_up_is_one_lr_too_high_even_when_the_loss_comes_back(lr):
    """Issue 14 symptom 3: SGD(momentum 0.9) 25x too fast: the loss jumps by orders of magnitude, then
    comes back. One finding, lr-too-high, tells the chain at the step it happened; still there at the end."""
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    w = train(model, opt, loader(x[:960], y[:960], 32), epochs=2)
    if lr == 0.02:
        assert serious(w) == []
        return
    assert codes(w) == {"lr-too-high"}
    f = w.findings[0]
    h = w.history
    jump = f.evidence["blowup_step"]
    assert h.loc[h.step == jump, "loss"].iloc[0] >= 100 * h["loss"].iloc[0]  # what the finding says happened
    assert f.evidence["ratio"] > 1e-2 and "jumped" in f.message and "came back" in f.message
    told = [e for e in w.finding_history if e.finding.evidence.get("blowup_step") == jump]
    # named at the first read of the loss after the jump (as loss-diverging until the loss came back): the
    # loss of an unsampled step stays on the device until the next sampled step (no sync per step, issue 17)
    next_read = min(s for s in w.monitor.samples if s >= jump)
    assert told[0].step == next_read and next_read - jump < 10
    assert h["loss"].iloc[-5:].mean() < 10 * h["loss"].iloc[0]  # it came back: still reported


def test_a_blow_up_that_does_not_come_back_is_one_loss_diverging():
    """SGD(3.0, momentum 0.9): the loss jumps, the units die, the loss goes NaN. One loss-diverging finding
    (the updates, the NaN and the dead units its evidence), not a pile of symptoms."""
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=3.0, momentum=0.9)
    w = train(model, opt, loader(x[:960], y[:960], 32), epochs=2)
    assert codes(w) == {"loss-diverging"}
    f = w.findings[0]
    assert f.evidence["ratio"] > 1e-2 and "non-finite" in f.message and "nonfinite" in f.evidence["explains"]
    raised = {e.finding.code for e in w.finding_history if e.action == "raised"}
    assert "dead-relu" not in raised and "nonfinite" not in raised


def test_blow_up_edges():
    """A loss 100x its first value is a blow-up; 99x is not. Without large updates before it, it is a
    transient blow-up (exploding-gradients); still blown up at the end, loss-diverging."""

    def run_at(factor: float, ratio: float, end: float) -> RunData:
        losses = [2.0, 2.1, 2.0 * factor, end, end, end]
        steps = [StepRecord(step=i + 1, loss=v, grad_norm=1.0) for i, v in enumerate(losses)]
        samples = {1: [LayerSample(step=1, layer="fc", type="Linear", update_ratio=ratio)]}
        return _run(steps, samples)

    assert find_blowup(run_at(99, 0.1, 2.0)) is None
    b = find_blowup(run_at(100, 0.1, 2.0))
    assert b is not None and b.step == 3 and b.cause == "lr" and not b.still
    assert {f.code for f in diagnose(run_at(100, 0.1, 2.0))} == {"lr-too-high"}
    assert {f.code for f in diagnose(run_at(100, 1e-3, 2.0))} == {"exploding-gradients"}
    assert {f.code for f in diagnose(run_at(100, 0.1, 500.0))} == {"loss-diverging"}


class Deep(nn.Sequential):
    def __init__(self, std: float | None) -> None:
        layers = [nn.Linear(64, 256), nn.ReLU()]
        for _ in range(5):
            layers += [nn.Linear(256, 256), nn.ReLU()]
        super().__init__(*layers, nn.Linear(256, 10))
        if std is not None:
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=std)


@pytest.mark.parametrize("std", [1.0, None])
def test_init_that_explodes_is_exploding_gradients_at_step_1(std):
    """Weights drawn with std 1 in a deep MLP: the untrained loss is astronomically above ln 10 and the
    next step is NaN. One finding at step 1 (the NaN and the initial loss are its evidence)."""
    w = _short_run(Deep(std), lr=0.003 if std else 0.05)
    if std is None:
        assert serious(w) == []
        return
    assert codes(w) == {"exploding-gradients"} and w.found_at("exploding-gradients") == 1
    f = w.findings[0]
    assert f.evidence["kind"] == "init" and {"nonfinite", "initial-loss"} <= set(f.evidence["explains"])


def test_a_forward_that_raises_leaves_no_function_mode_behind():
    """The mode that sees activation functions is pushed by the model's forward pre-hook: a forward that
    raises (on a sampled step) still takes it off, and so does an interrupt."""

    class Breaks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.fc(x))
            raise KeyboardInterrupt if h.shape[0] else RuntimeError

    x, y = digits()
    model = Breaks()
    with pytest.raises(KeyboardInterrupt), nbdebug.watch(model, torch.optim.SGD(model.parameters(), lr=0.1)):
        model(x[:8])
    assert torch.overrides._get_current_function_mode_stack() == []
    assert torch.relu(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]


class DeadFunctional(nn.Module):
    """torch.relu after a bias far below zero: every unit dead from the start."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x) - 50.0))


def test_a_compiled_model_sees_its_activation_functions_as_eager_does():
    """torch.compile: the layer hooks run on an eager replay of sampled steps; the functions its forward
    calls (torch.relu here) are seen there too, so a compiled model gets the same dead-relu as eager."""
    x, y = digits()
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = DeadFunctional()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        run_model = torch.compile(model, backend="eager") if compiled else model
        with nbdebug.watch(run_model, opt) as w:
            for i in range(6):
                opt.zero_grad()
                F.cross_entropy(run_model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]).backward()
                opt.step()
        results.append(w)
    eager, comp = results
    assert (
        "relu#1" in set(comp.layer_stats()["layer"]) == set(eager.layer_stats()["layer"])
    )  # fc1(x) - 50: numbered
    assert [f.code for f in comp.findings] == [f.code for f in eager.findings] and "dead-relu" in codes(comp)
