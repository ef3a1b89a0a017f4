"""nbdebug.watch: healthy runs stay silent, each classic bug is named, and its fix silences it.

Every loop is a real PyTorch training loop on digits or small synthetic data; what the monitor says is
checked against what the loop really did (the bug we planted), never against a hard-coded number.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug._core.errors import NbdebugError
from tests.watch_loops import (
    cnn,
    codes,
    digits,
    loader,
    mlp,
    serious,
    single_thread,  # noqa: F401  (autouse fixture)
    train,
)


@pytest.fixture(scope="module")
def data():
    x, y = digits()
    return loader(x[:640], y[:640]), loader(x[1500:1700], y[1500:1700], shuffle=False)


# -- healthy runs: no warning or error -------------------------------------------------------------


def test_healthy_mlp_adam_with_validation(data):
    train_dl, val_dl = data
    model = mlp()
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_dl, epochs=4, val=val_dl)
    assert serious(w) == []
    assert w.internal_errors == []
    ep = w.epochs
    assert len(ep) == 4 and list(ep["steps"]) == [10, 10, 10, 10]
    assert ep["loss"].iloc[-1] < ep["loss"].iloc[0]
    assert ep["val_acc"].notna().all() and ep["train_acc"].notna().all()
    # the val accuracy is what the model really scores on the validation batches
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in val_dl)
    assert ep["val_acc"].iloc[-1] == pytest.approx(correct / 200)


def test_healthy_cnn_sgd_momentum_dropout_batchnorm(data):
    train_dl, val_dl = data
    model = cnn(dropout=0.2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    w = train(model, opt, train_dl, epochs=4, val=val_dl)
    assert serious(w) == []
    assert w.internal_errors == []


class SeqClassifier(nn.Module):
    """Reads an 8x8 digit row by row with an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.view(-1, 8, 8))
        return self.head(out[:, -1])


def test_healthy_lstm(data):
    train_dl, _ = data
    model = SeqClassifier()
    w = train(model, torch.optim.Adam(model.parameters(), lr=3e-3), train_dl, epochs=4)
    assert serious(w) == []
    assert w.epochs["loss"].iloc[-1] < w.epochs["loss"].iloc[0]


def test_healthy_autoencoder_mse():
    x, _ = digits()
    dl = loader(x[:640], x[:640])
    model = nn.Sequential(
        nn.Linear(64, 32),
        nn.Tanh(),
        nn.Linear(32, 8),
        nn.Tanh(),
        nn.Linear(8, 32),
        nn.Tanh(),
        nn.Linear(32, 64),
    )
    w = train(model, torch.optim.Adam(model.parameters(), lr=3e-3), dl, loss_fn=nn.MSELoss(), epochs=4)
    assert serious(w) == []
    assert w.layer_stats()["saturated_frac"].dropna().max() < 0.5


def test_healthy_gradient_accumulation_and_in_place_zeroing(data):
    """Deliberate accumulation over 5 backward passes is not `grad-not-zeroed`; nor is
    zero_grad(set_to_none=False) combined with clipping."""
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with nbdebug.watch(model, opt) as w:
        for _ in range(3):
            for i, (x, y) in enumerate(train_dl):
                (F.cross_entropy(model(x), y) / 5).backward()
                if i % 5 == 4:
                    opt.step()
                    opt.zero_grad()
        for _ in range(3):
            for x, y in train_dl:
                opt.zero_grad(set_to_none=False)
                F.cross_entropy(model(x), y).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
    assert "grad-not-zeroed" not in codes(w)
    assert serious(w) == []
    assert (w.history["backwards"].iloc[:6] == 5).all()


# -- each bug: named by the buggy loop, silent for the fixed loop ------------------------------------


@pytest.mark.parametrize("bug", [True, False])
def test_grad_not_zeroed(data, bug):
    train_dl, _ = data
    model = mlp()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.05), train_dl, epochs=2, zero_grad=not bug)
    assert ("grad-not-zeroed" in codes(w)) is bug
    if bug:
        f = next(f for f in w.findings if f.code == "grad-not-zeroed")
        assert f.severity == "error" and "zero_grad" in f.hint
        assert w.found_at("grad-not-zeroed") == 2  # named on the first step that used a stale gradient
        assert (w.history["leaked"].iloc[1:] == len(list(model.parameters()))).all()
    else:
        assert serious(w) == []


@pytest.mark.parametrize("lr", [0.3, 0.01])
def test_lr_too_high(lr):
    x, y = digits()
    dl = loader(x[:1000], y[:1000], batch_size=16)
    model = mlp()
    w = train(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), dl, epochs=2)
    assert ("lr-too-high" in codes(w)) is (lr == 0.3)
    if lr == 0.01:
        assert serious(w) == []


@pytest.mark.parametrize("lr", [1e-6, 0.05])
def test_lr_too_low_and_flat_loss(data, lr):
    train_dl, _ = data
    model = mlp()
    w = train(model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), train_dl, epochs=4)
    found = codes(w)
    assert ("lr-too-low" in found) is (lr == 1e-6)
    assert ("loss-not-decreasing" in found) is (lr == 1e-6)
    if lr == 0.05:
        assert serious(w) == []


def _regression(n: int = 512):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return x, y


@pytest.mark.parametrize("lr", [1.05, 0.05])
def test_loss_diverging(lr):
    x, y = _regression()
    model = nn.Linear(4, 1)
    w = train(
        model, torch.optim.SGD(model.parameters(), lr=lr), loader(x, y, 32), loss_fn=nn.MSELoss(), epochs=4
    )
    assert ("loss-diverging" in codes(w)) is (lr == 1.05)
    if lr == 0.05:
        assert serious(w) == []


def test_high_lr_oscillation_and_dead_units_are_one_finding():
    """SGD(0.3, momentum 0.9) on an MLP: the loss wiggles, then the ReLUs die and the loss sits at chance.
    One finding names the cause with that chain as its evidence (it used to be loss-oscillating, dead-relu
    and lr-too-high side by side, the first two never withdrawn)."""
    x, y = digits()
    dl = loader(x[:1000], y[:1000], batch_size=16)
    model = mlp()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), dl, epochs=3)
    assert codes(w) == {"lr-too-high"}
    f = w.findings[0]
    dead = w.layer_stats(last=True).set_index("layer")["dead_frac"]
    assert set(f.evidence["layers"]) == {n for n in ("1", "3") if dead[n] >= 0.7} != set()
    assert f.evidence["ratio"] > 1e-2 and "dead" in f.message


@pytest.mark.parametrize("lr", [1.3, 0.3])
def test_loss_oscillating(lr):
    """SGD with momentum 0.9 on fresh batches of 256: at lr 1.3 the loss swings from step to step far
    beyond what sampling 256 examples explains; at lr 0.3 it settles. (A wiggle that the batch size
    explains is no oscillation: test_watch_task.)"""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    w_true = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    with nbdebug.watch(model, opt) as w:
        for _ in range(150):
            x = torch.randn(256, 4)
            y = x @ w_true + 5 + torch.randn(256, 1)
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
    f = [f for f in w.findings if f.code == "loss-oscillating"]
    assert bool(f) is (lr == 1.3)
    if f:
        assert f[0].evidence["wiggle"] > 2 * f[0].evidence["expected"]
        assert "sqrt(256 examples per step)" in f[0].message
    else:
        assert serious(w) == []


class LogLayer(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


class SafeSqrt(nn.Module):
    """The classic trap: the forward masks sqrt of negatives, the backward still multiplies 0 by NaN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, torch.sqrt(x), torch.zeros_like(x))


@pytest.mark.parametrize("fixed", [False, True])
def test_nonfinite_names_first_layer_in_forward(fixed):
    """log of a negative number in the middle of the net: the finding names that layer, not the loss."""
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU() if fixed else nn.Identity(), nn.Linear(32, 32))
    model.add_module("log", LogLayer())
    model.add_module("head", nn.Linear(32, 10))
    if fixed:
        model.log = nn.Identity()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.01), loader(x[:256], y[:256]), epochs=1)
    f = [f for f in w.findings if f.code == "nonfinite"]
    if fixed:
        assert f == [] and serious(w) == []
    else:
        assert f[0].where == "log" and f[0].severity == "error"
        assert "log" in f[0].message


def test_nonfinite_in_input_and_in_backward():
    x, y = digits()
    x = x[:128].clone()
    x[70, 3] = float("nan")
    model = mlp()
    w = train(
        model, torch.optim.SGD(model.parameters(), lr=0.01), loader(x, y[:128], shuffle=False), epochs=1
    )
    f = next(f for f in w.findings if f.code == "nonfinite")
    assert f.where == "input" and "step 2" in f.message

    # forward finite, backward not
    model = nn.Sequential(nn.Linear(64, 16), SafeSqrt(), nn.Linear(16, 10))
    x, y = digits()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.01), loader(x[:128], y[:128]), epochs=1)
    f = next(f for f in w.findings if f.code == "nonfinite")
    assert "gradient" in f.message and f.where == "0"


@pytest.mark.parametrize("scale", [3.0, 1.0])
def test_exploding_gradients(scale):
    torch.manual_seed(0)
    x, y = _regression()
    layers = []
    for _ in range(6):
        lin = nn.Linear(16, 16)
        with torch.no_grad():
            lin.weight.mul_(scale * math.sqrt(3.0))
        layers.append(lin)
    model = nn.Sequential(nn.Linear(4, 16), *layers, nn.Linear(16, 1))
    w = train(model, torch.optim.SGD(model.parameters(), lr=1e-9 if scale > 1 else 1e-3), loader(x, y, 32),
              loss_fn=nn.MSELoss(), epochs=1)  # fmt: skip
    assert ("exploding-gradients" in codes(w)) is (scale > 1)


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.ReLU])
def test_vanishing_gradients(data, act):
    train_dl, _ = data
    layers = [nn.Linear(64, 32), act()]
    for _ in range(8):
        layers += [nn.Linear(32, 32), act()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    w = train(model, opt, train_dl, epochs=3)
    assert ("vanishing-gradients" in codes(w)) is (act is nn.Sigmoid)
    if act is nn.Sigmoid:
        assert next(f for f in w.findings if f.code == "vanishing-gradients").where == "0"


@pytest.mark.parametrize("bias", [-10.0, None])
def test_dead_relu(data, bias):
    train_dl, _ = data
    model = mlp()
    if bias is not None:
        with torch.no_grad():
            model[0].bias.fill_(bias)
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_dl, epochs=3)
    dead = [f for f in w.findings if f.code == "dead-relu"]
    if bias is None:
        assert dead == [] and serious(w) == []
    else:
        assert [f.where for f in dead] == ["1"]  # the ReLU after the layer with the negative bias
        assert w.layer_stats(last=True).set_index("layer").loc["1", "dead_frac"] == 1.0


@pytest.mark.parametrize("gain", [30.0, 1.0])
def test_saturated_activation(data, gain):
    train_dl, _ = data
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    with torch.no_grad():
        model[0].weight.mul_(gain)
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_dl, epochs=3)
    sat = [f for f in w.findings if f.code == "saturated-activation"]
    assert [f.where for f in sat] == (["1"] if gain > 1 else [])


class Detached(nn.Module):
    def __init__(self, detach: bool) -> None:
        super().__init__()
        self.body, self.head, self.detach = nn.Linear(64, 32), nn.Linear(32, 10), detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.body(x))
        return self.head(h.detach() if self.detach else h)


@pytest.mark.parametrize("detach", [True, False])
def test_no_grad(data, detach):
    train_dl, _ = data
    model = Detached(detach)
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_dl, epochs=2)
    f = [f for f in w.findings if f.code == "no-grad"]
    assert bool(f) is detach
    if detach:
        assert f[0].evidence["params"] == ["body.bias", "body.weight"]


@pytest.mark.parametrize("bug", [True, False])
def test_eval_mode(data, bug):
    train_dl, val_dl = data
    model = cnn(dropout=0.3)
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    w = train(model, opt, train_dl, epochs=2, val=val_dl, eval_mode_bug=bug)
    assert ("eval-mode" in codes(w)) is bug
    assert list(w.epochs["steps"]) == [10, 10]  # epochs are still seen when training in eval mode


@pytest.mark.parametrize("bug", [True, False])
def test_softmax_before_cross_entropy_functional(data, bug):
    """Seen through a functional F.cross_entropy call in the loop, no loss_fn given."""
    train_dl, _ = data
    model = nn.Sequential(mlp(), nn.Softmax(dim=1)) if bug else mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nbdebug.watch(model, opt) as w:
        for x, y in train_dl:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert ("softmax-before-ce" in codes(w)) is bug
    assert w.history["loss"].notna().all()


def _binary(n: int = 512):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, :1] + x[:, 1:2] > 0).float()


@pytest.mark.parametrize("case", ["sigmoid+logits", "sigmoid+bce", "logits"])
def test_bce_pitfalls(case):
    x, y = _binary()
    body = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    model = body if case == "logits" else nn.Sequential(body, nn.Sigmoid())
    loss_fn = nn.BCELoss() if case == "sigmoid+bce" else nn.BCEWithLogitsLoss()
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-2), loader(x, y), loss_fn=loss_fn, epochs=2)
    found = codes(w)
    assert ("sigmoid-before-bce-logits" in found) is (case == "sigmoid+logits")
    assert ("sigmoid-bceloss" in found) is (case == "sigmoid+bce")
    if case == "sigmoid+bce":
        assert next(f for f in w.findings if f.code == "sigmoid-bceloss").severity == "info"
    if case != "sigmoid+logits":
        assert serious(w) == []
    assert w.epochs["train_acc"].notna().all()


@pytest.mark.parametrize("bug", [True, False])
def test_target_broadcast(bug):
    x, y = _regression()
    target = y.squeeze(1) if bug else y
    model = nn.Linear(4, 1)
    with pytest.warns(UserWarning) if bug else _nothing():
        w = train(
            model,
            torch.optim.SGD(model.parameters(), lr=0.05),
            loader(x, target, 32),
            loss_fn=nn.MSELoss(),
            epochs=1,
        )
    f = [f for f in w.findings if f.code == "target-broadcast"]
    assert bool(f) is bug
    if bug:
        assert f[0].evidence["input_shape"] == (32, 1) and f[0].evidence["target_shape"] == (32,)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@pytest.mark.parametrize("gain", [50.0, 1.0])
def test_initial_loss(data, gain):
    train_dl, _ = data
    model = mlp()
    with torch.no_grad():
        model[-1].weight.mul_(gain)
        model[-1].bias.mul_(gain)
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), train_dl, epochs=1)
    f = [f for f in w.findings if f.code == "initial-loss"]
    assert bool(f) is (gain > 1)
    if f:
        assert f[0].evidence["expected"] == pytest.approx(math.log(10))
        assert f[0].evidence["value"] == pytest.approx(w.history["loss"].iloc[0])


@pytest.mark.parametrize("normalize", [False, True])
def test_unnormalized_input(normalize):
    x, y = digits(normalize=normalize)
    model = mlp()
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), loader(x[:256], y[:256]), epochs=1)
    f = [f for f in w.findings if f.code == "unnormalized-input"]
    assert bool(f) is (not normalize)
    if f:
        assert f[0].evidence["mean"] == pytest.approx(float(x.mean()), rel=0.3)


@pytest.mark.parametrize("imbalanced", [True, False])
def test_class_imbalance(imbalanced):
    x, y = digits()
    if imbalanced:
        keep = (y == 0) | (torch.arange(len(y)) % 8 == 0)
        x, y = x[keep], y[keep]
    x, y = x[:640], y[:640]
    model = mlp()
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), loader(x, y), epochs=2)
    f = [f for f in w.findings if f.code == "class-imbalance"]
    assert bool(f) is imbalanced
    if f:
        counts = torch.bincount(y, minlength=10).tolist()
        assert f[0].evidence["counts"] == [2 * c for c in counts]  # every label seen in two epochs


@pytest.mark.parametrize("bug", [True, False])
def test_predicts_mode(data, bug):
    """A preprocessing bug zeroes the inputs: only the bias learns, so one class is always predicted."""
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with nbdebug.watch(model, opt) as w:
        for _ in range(3):
            for x, y in train_dl:
                opt.zero_grad()
                F.cross_entropy(model(x * 0 if bug else x), y).backward()
                opt.step()
    assert ("predicts-mode" in codes(w)) is bug


# -- epochs, history, layer stats ------------------------------------------------------------------


def test_manual_epochs_with_plain_batches_and_no_optimizer_hooks_left(data):
    x, y = digits()
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 320, 32)]
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nbdebug.watch(model, opt, every=5) as w:
        for _ in range(3):
            for xb, yb in batches:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
            w.epoch()
    assert list(w.epochs["steps"]) == [10, 10, 10]
    assert list(w.history["epoch"]) == [0] * 10 + [1] * 10 + [2] * 10
    stats = w.layer_stats()
    assert sorted(set(stats["step"])) == [1, 2, 3, 4, 5, 10, 15, 20, 25, 30]  # the first steps, then every 5
    assert list(w.layer_stats(last=True)["layer"]) == ["0", "1", "2", "3", "4"]


def test_update_ratios_of_successive_sampled_steps_are_each_steps_own(data):
    """The weights before each sampled update are copied into buffers kept for the run: each step's update
    ratio is still that step's, also after the model changed dtype in the middle of the run (new buffers)."""
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = iter(train_dl)
    expected = []
    with nbdebug.watch(model, opt, every=1) as w:
        for step in range(4):
            if step == 2:
                model.double()  # the same Parameter objects, float64 from here on
            x, y = next(batches)
            opt.zero_grad()
            F.cross_entropy(model(x.to(model[0].weight.dtype)), y).backward()
            before = [p.detach().clone() for p in model[0].parameters()]
            opt.step()
            after = [p.detach() for p in model[0].parameters()]
            upd = math.sqrt(sum(float((a - b).norm()) ** 2 for a, b in zip(after, before)))
            expected.append(upd / math.sqrt(sum(float(a.norm()) ** 2 for a in after)))
    stats = w.layer_stats()
    got = list(stats[stats["layer"] == "0"].sort_values("step")["update_ratio"])
    assert got == pytest.approx(expected, rel=1e-5)
    assert w.monitor._snapshot_buffers is None  # released with the run


def test_layer_stats_match_pytorch(data):
    """Gradient norm, weight norm and update ratio of a sampled step equal what we compute by hand."""
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = next(iter(train_dl))
    with nbdebug.watch(model, opt, every=1) as w:
        opt.zero_grad()
        h = model[1](model[0](x))
        F.cross_entropy(model[4](model[3](model[2](h))), y).backward()
        expected_grad = math.sqrt(model[0].weight.grad.norm() ** 2 + model[0].bias.grad.norm() ** 2)
        before = [p.detach().clone() for p in model[0].parameters()]
        opt.step()
    row = w.layer_stats().set_index("layer").loc["0"]
    after = [p.detach() for p in model[0].parameters()]
    upd = math.sqrt(sum(float((a - b).norm()) ** 2 for a, b in zip(after, before)))
    wn = math.sqrt(sum(float(a.norm()) ** 2 for a in after))
    assert row["grad_norm"] == pytest.approx(expected_grad, rel=1e-5)
    assert row["update_ratio"] == pytest.approx(upd / wn, rel=1e-5)
    relu = w.layer_stats().set_index("layer").loc["1"]
    assert relu["act_zero_frac"] == pytest.approx(float((h == 0).float().mean()))
    hist = w.histograms("1", "activation")
    assert len(hist) == 1 and sum(hist[0][3]) == h.numel()
    assert sum(w.histograms("0", "gradient")[0][3]) == 64 * 64 + 64


def test_live_updates_are_throttled(data):
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen = []
    with nbdebug.watch(model, opt, on_update=lambda w: seen.append(w.steps), update_interval=3600) as w:
        for x, y in train_dl:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert seen == [1, 10]  # the first step, then the forced final update: never once per step
    assert w.updates == 2


def test_repr_is_static_and_names_findings(data):
    train_dl, _ = data
    model = mlp()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.05), train_dl, epochs=1, zero_grad=False)
    bundle = w._repr_mimebundle_()
    assert "grad-not-zeroed" in bundle["text/plain"]
    assert (
        "data:image/png;base64," in bundle["text/html"]
        and 'data-code="grad-not-zeroed"' in bundle["text/html"]
    )


# -- bad input ------------------------------------------------------------------------------------


def test_bad_arguments():
    model = mlp()
    with pytest.raises(NbdebugError, match="nn.Module as model, got Tensor"):
        nbdebug.watch(torch.zeros(3))
    with pytest.raises(NbdebugError, match="torch.optim.Optimizer, got Sequential"):
        nbdebug.watch(model, mlp())
    with pytest.raises(NbdebugError, match="every must be a positive"):
        nbdebug.watch(model, every=0)
    with pytest.raises(NbdebugError, match="loss_fn must be"):
        nbdebug.watch(model, loss_fn=3)
    w = nbdebug.watch(model)
    with pytest.raises(NbdebugError, match="kind must be"):
        w.histograms("0", "weights")
    with w, pytest.raises(NbdebugError, match="already running"):
        w.__enter__()


class ManualCrossEntropy(nn.Module):
    """A hand-written loss that calls no torch.nn.functional loss: seen through the loss_fn hook."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -torch.log_softmax(logits, 1).gather(1, target[:, None]).mean()


def test_custom_loss_module_feeds_accuracy_and_labels(data):
    train_dl, val_dl = data
    model = mlp()
    w = train(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        train_dl,
        loss_fn=ManualCrossEntropy(),
        epochs=2,
        val=val_dl,
    )
    ep = w.epochs
    assert ep["train_acc"].notna().all() and ep["val_acc"].notna().all() and ep["val_loss"].notna().all()
    assert serious(w) == []


def test_resumed_runs_at_their_plateau_are_healthy():
    """Watching a model that already trained: a flat loss far below what an input-blind predictor
    scores is convergence, not `loss-not-decreasing` (classification and a regression at its noise floor)."""
    x, y = digits()
    dl = loader(x[:640], y[:640])
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(15):
        for xb, yb in dl:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    assert serious(train(model, opt, dl, epochs=4)) == []

    g = torch.Generator().manual_seed(3)
    xr = torch.randn(1024, 4, generator=g)
    yr = xr @ torch.tensor([[1.0], [2.0], [-1.0], [0.5]]) + 0.3 * torch.randn(1024, 1, generator=g)
    dr = loader(xr, yr, 32)
    reg = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.Adam(reg.parameters(), lr=1e-2)
    for _ in range(10):
        for xb, yb in dr:
            opt.zero_grad()
            F.mse_loss(reg(xb), yb).backward()
            opt.step()
    w = train(reg, opt, dr, loss_fn=nn.MSELoss(), epochs=5)
    assert w.epochs["loss"].iloc[-1] > 0.9 * w.epochs["loss"].iloc[0]  # flat indeed
    assert serious(w) == []


def test_without_an_optimizer_the_one_stepping_the_model_is_adopted(data):
    """No optimizer given: the optimizer that steps the model's parameters is found at its first step();
    its steps are the watch's steps, with update ratios and the zero_grad check, as if it had been given."""
    train_dl, _ = data
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)  # steps nothing of the model
    with nbdebug.watch(model, every=2) as w:
        for _ in range(3):
            for x, y in train_dl:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
                other.step()
    assert w.monitor.adopted == [opt] and w.monitor.analysis_backwards == 0
    assert w.steps == 30 and list(w.epochs["steps"]) == [10, 10, 10]
    stats = w.layer_stats()
    assert stats["grad_norm"].notna().any() and stats["update_ratio"].notna().any()
    assert w.history["lr"].eq(0.05).all()
    assert serious(w) == []


def test_without_an_optimizer_a_hand_written_update_is_a_step(data):
    """d2l-style SGD by hand: each backward followed by `p -= lr * p.grad` is a training step."""
    train_dl, _ = data
    model = mlp()
    with nbdebug.watch(model, every=2) as w:
        for x, y in train_dl:
            F.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
                    p.grad.zero_()
    assert w.steps == 10 and w.monitor.analysis_backwards == 0
    assert w.layer_stats()["update_ratio"].notna().any()


def test_backward_passes_without_any_update_are_analysis_not_training(data):
    """An adversarial example or saliency map after training (model.eval(), zero_grad, backward to the
    input, no optimizer step): not training steps, so no eval-mode or loss-curve finding."""
    train_dl, _ = data
    model = nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.2), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nbdebug.watch(model) as w:
        model.train()
        for x, y in train_dl:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        model.eval()
        for x, y in train_dl:  # FGSM: the gradient of the loss with respect to the input
            x = x.clone().requires_grad_(True)
            model.zero_grad()
            F.cross_entropy(model(x), y).backward()
            (x + 0.1 * x.grad.sign()).detach()
    assert w.steps == 10 and w.monitor.analysis_backwards == 10
    assert w.history["eval_mode"].sum() == 0
    assert serious(w) == []


def test_backward_passes_without_an_optimizer_at_all_are_analysis():
    model = nn.Linear(4, 2)
    with nbdebug.watch(model) as w:
        for _ in range(5):
            x = torch.randn(8, 4, requires_grad=True)
            model(x).sum().backward()
    assert w.steps == 0 and w.monitor.analysis_backwards == 5 and w.findings == []


def test_validation_counts_are_not_inflated_by_the_per_example_recomputation():
    """A model that computes its loss in forward (as Hugging Face models do): on sampled steps the loss
    is recomputed with reduction='none' (the wiggle's sampling spread) while the activation probe's
    torch-function mode is on; that recomputation went through the patched F.cross_entropy and was
    counted as one more (validation) loss call."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self.fc2(torch.relu(self.fc1(x))), y)

    x, y = digits()
    model = Functional()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    train_dl, val = loader(x[:320], y[:320], 32), loader(x[1500:1600], y[1500:1600], 50, shuffle=False)
    with nbdebug.watch(model, opt, every=2) as w:
        for _ in range(2):
            for xb, yb in train_dl:
                opt.zero_grad()
                model(xb, yb).backward()
                opt.step()
            with torch.no_grad():
                for xb, yb in val:
                    model(xb, yb)
    assert list(w.epochs["val_n"]) == [100, 100]
