"""nbdebug.check and nbdebug.gradcheck against what PyTorch actually does, on real layers and digits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.hooks import hook_counts


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and steadily on a shared CPU; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def digits(n: int = 64, normalize: bool = True):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images[:n], dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:n])
    if normalize:
        x = (x - 4.88) / 6.02  # the digits' mean and std
    return x, y


def cnn(classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64, classes),
    )  # fmt: skip


def codes(report) -> set[str]:
    return {f.code for f in report.findings}


def snapshot(model: nn.Module):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()},
        [m.training for m in model.modules()],
        hook_counts(model),
        torch.get_rng_state(),
    )


def assert_same(model: nn.Module, snap) -> None:
    sd, grads, modes, hooks, rng = snap
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    for n, p in model.named_parameters():
        assert (p.grad is None) == (grads[n] is None)
        if p.grad is not None:
            assert torch.equal(p.grad, grads[n])
    assert [m.training for m in model.modules()] == modes
    assert hook_counts(model) == hooks
    assert torch.equal(torch.get_rng_state(), rng)


# --- check: a healthy model ------------------------------------------------------------------


def test_healthy_cnn_on_digits_has_no_warning_and_is_left_untouched():
    model, (x, y) = cnn(), digits()
    snap = snapshot(model)
    report = nbdebug.check(model, (x, y), nn.CrossEntropyLoss())
    assert report.passed, report.findings
    assert not [f for f in report.findings if f.severity in ("error", "warning")]
    assert report.loss_kind == "ce" and report.num_classes == 10
    assert report.expected_loss == pytest.approx(math.log(10))
    assert report.loss == pytest.approx(math.log(10), abs=0.3)
    assert report.gradients.has_grad.all() and (report.gradients.grad_norm > 0).all()
    assert report.turned_off == ["dropout (layer 7)"]
    assert_same(model, snap)
    bundle = report._repr_mimebundle_()
    assert "ready to train" in bundle["text/plain"] and "<table" in bundle["text/html"]
    assert list(report.to_frame().columns) == ["code", "severity", "where", "message", "hint"]


def test_check_accepts_a_loader_and_dict_batches():
    x, y = digits()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    assert nbdebug.check(cnn(), loader, nn.CrossEntropyLoss()).passed
    assert nbdebug.check(cnn(), {"image": x, "label": y}, F.cross_entropy).passed
    assert nbdebug.check(cnn(), [(x[:8], y[:8]), (x[8:16], y[8:16])], F.cross_entropy).passed


# --- check: each finding triggered by a minimal bug, absent when fixed ---------------------------


def test_initial_loss_flags_an_overconfident_final_layer():
    model, (x, y) = cnn(), digits()
    with torch.no_grad():
        model[-1].weight.mul_(60)
    report = nbdebug.check(model, (x, y), nn.CrossEntropyLoss())
    f = next(f for f in report.findings if f.code == "initial-loss")
    assert f.severity == "warning" and f.evidence["expected"] == pytest.approx(2.302585, abs=1e-5)
    assert "over-confident" in f.hint
    assert report.loss > 4


def test_initial_loss_expectation_for_bce_and_for_a_lambda():
    x = torch.randn(32, 5)
    report = nbdebug.check(nn.Linear(5, 3), (x, torch.randint(0, 2, (32, 3)).float()), nn.BCEWithLogitsLoss())
    assert report.expected_loss == pytest.approx(math.log(2))
    # a lambda wrapping cross-entropy is recognised from its autograd graph
    report = nbdebug.check(
        nn.Linear(5, 4), (x, torch.randint(0, 4, (32,))), lambda o, t: F.cross_entropy(o, t)
    )
    assert report.loss_kind == "ce" and report.expected_loss == pytest.approx(math.log(4))


def test_nll_on_raw_logits_gets_an_initial_loss_hint():
    x, y = digits()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].bias.fill_(3.0)
    report = nbdebug.check(model, (x, y), nn.NLLLoss())
    f = next(f for f in report.findings if f.code == "initial-loss")
    assert "LogSoftmax" in f.hint
    fixed = nbdebug.check(nn.Sequential(*model, nn.LogSoftmax(1)), (x, y), nn.NLLLoss())
    assert "initial-loss" not in codes(fixed)


def test_softmax_before_cross_entropy():
    x, y = digits()
    buggy = nbdebug.check(nn.Sequential(cnn(), nn.Softmax(dim=1)), (x, y), nn.CrossEntropyLoss())
    assert "softmax-before-ce" in codes(buggy)
    assert next(f for f in buggy.findings if f.code == "softmax-before-ce").severity == "error"
    nll = nbdebug.check(nn.Sequential(cnn(), nn.Softmax(dim=1)), (x, y), nn.NLLLoss())
    assert "softmax-before-ce" in codes(nll)
    assert "LogSoftmax" in next(f for f in nll.findings if f.code == "softmax-before-ce").hint
    assert "softmax-before-ce" not in codes(nbdebug.check(cnn(), (x, y), nn.CrossEntropyLoss()))
    assert "softmax-before-ce" not in codes(
        nbdebug.check(nn.Sequential(cnn(), nn.LogSoftmax(1)), (x, y), nn.NLLLoss())
    )


def test_sigmoid_before_bce_with_logits_and_sigmoid_bceloss():
    x, t = torch.randn(32, 6), torch.randint(0, 2, (32, 1)).float()
    buggy = nbdebug.check(nn.Sequential(nn.Linear(6, 1), nn.Sigmoid()), (x, t), nn.BCEWithLogitsLoss())
    assert "sigmoid-before-bce-logits" in codes(buggy)
    fixed = nbdebug.check(nn.Linear(6, 1), (x, t), nn.BCEWithLogitsLoss())
    assert codes(fixed) == set()
    functional = nbdebug.check(
        nn.Linear(6, 1), (x, t), lambda o, y: F.binary_cross_entropy(torch.sigmoid(o), y)
    )
    assert "sigmoid-bceloss" not in codes(functional)  # the sigmoid is inside the loss, not the model
    classic = nbdebug.check(nn.Sequential(nn.Linear(6, 1), nn.Sigmoid()), (x, t), nn.BCELoss())
    (f,) = classic.findings
    assert f.code == "sigmoid-bceloss" and f.severity == "info" and classic.passed


def test_target_broadcast_mse_n1_vs_n():
    x, y = torch.randn(16, 4), torch.randn(16)
    for loss in (nn.MSELoss(), F.mse_loss, lambda o, t: F.l1_loss(o, t), lambda o, t: ((o - t) ** 2).mean()):
        report = nbdebug.check(nn.Linear(4, 1), (x, y), loss)
        f = next(f for f in report.findings if f.code == "target-broadcast")
        assert f.evidence["broadcast"] == (16, 16) and f.severity == "error"
    assert "target-broadcast" not in codes(nbdebug.check(nn.Linear(4, 1), (x, y.unsqueeze(1)), nn.MSELoss()))


def test_targets_outside_the_class_range_or_of_the_wrong_dtype():
    x, y = digits()
    with pytest.raises(NbdebugError, match=r"\[0, 4\].*5 classes.*\[0, 9\]"):
        nbdebug.check(cnn(classes=5), (x, y), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="integer class indices.*y.long"):
        nbdebug.check(cnn(), (x, y.float()), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="BCEWithLogitsLoss"):
        nbdebug.check(nn.Linear(4, 1), (torch.randn(8, 4), torch.ones(8)), nn.BCEWithLogitsLoss())
    with pytest.raises(NbdebugError, match="BCELoss needs probabilities"):
        nbdebug.check(nn.Linear(4, 1), (torch.randn(8, 4) * 5, torch.ones(8, 1)), nn.BCELoss())
    # ignore_index targets are allowed outside the range
    y2 = y.clone()
    y2[:3] = -100
    assert nbdebug.check(cnn(), (x, y2), nn.CrossEntropyLoss()).passed


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used = nn.Linear(4, 3)
        self.spare = nn.Linear(4, 3)

    def forward(self, x):
        return self.used(x)


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x).detach())


def test_no_grad_names_unused_and_detached_parameters():
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    f = next(
        f for f in nbdebug.check(Unused(), (x, y), nn.CrossEntropyLoss()).findings if f.code == "no-grad"
    )
    assert f.evidence["parameters"] == ["spare.weight", "spare.bias"]
    f = next(
        f for f in nbdebug.check(Detached(), (x, y), nn.CrossEntropyLoss()).findings if f.code == "no-grad"
    )
    assert f.evidence["parameters"] == ["body.weight", "body.bias"]
    whole = nbdebug.check(nn.Linear(4, 3), (x, y), lambda o, t: F.cross_entropy(o.detach(), t))
    assert "not connected" in next(f for f in whole.findings if f.code == "no-grad").message
    frozen = nn.Linear(4, 3)
    frozen.weight.requires_grad_(False)  # frozen on purpose: not a finding
    assert "no-grad" not in codes(nbdebug.check(frozen, (x, y), nn.CrossEntropyLoss()))
    assert not frozen.weight.requires_grad


class LogLayer(nn.Module):
    def forward(self, x):
        return torch.log(x)


def test_nonfinite_names_the_first_layer_and_the_input():
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    model = nn.Sequential(nn.Linear(4, 4), LogLayer(), nn.Linear(4, 3))
    report = nbdebug.check(model, (x, y), nn.CrossEntropyLoss())
    wheres = {f.where for f in report.findings if f.code == "nonfinite"}
    assert "1" in wheres and "loss" in wheres
    bad = x.clone()
    bad[0, 0] = float("nan")
    assert "input 0" in {
        f.where for f in nbdebug.check(nn.Linear(4, 3), (bad, y), nn.CrossEntropyLoss()).findings
    }


def test_unnormalized_input_pixels():
    x, y = digits(normalize=False)
    raw = nbdebug.check(cnn(), (x * (255 / 16), y), nn.CrossEntropyLoss())
    f = next(f for f in raw.findings if f.code == "unnormalized-input")
    assert "0-255 pixels" in f.message
    ids = torch.randint(0, 100, (8, 5))  # integer inputs (token ids) are not judged
    emb = nn.Sequential(nn.Embedding(100, 4), nn.Flatten(), nn.Linear(20, 3))
    assert "unnormalized-input" not in codes(
        nbdebug.check(emb, (ids, torch.randint(0, 3, (8,))), F.cross_entropy)
    )


def test_dead_relu_and_saturated_activation_at_initialization():
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    dead = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    with torch.no_grad():
        dead[0].bias.fill_(-20.0)
    f = next(f for f in nbdebug.check(dead, (x, y), nn.CrossEntropyLoss()).findings if f.code == "dead-relu")
    assert f.where == "1" and f.evidence["dead_fraction"] >= 0.7
    sat = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        sat[0].weight.mul_(40)
    assert "saturated-activation" in codes(nbdebug.check(sat, (x, y), nn.CrossEntropyLoss()))
    healthy = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
    assert nbdebug.check(healthy, (x, y), nn.CrossEntropyLoss()).findings == []


def test_regularization_must_raise_the_loss():
    model, (x, y) = cnn(), digits()

    def l2(m):
        return sum((p**2).sum() for p in m.parameters())

    good = nbdebug.check(
        model, (x, y), F.cross_entropy, reg=lambda lam: lambda o, t: F.cross_entropy(o, t) + lam * l2(model)
    )
    assert "reg-not-increasing-loss" not in codes(good)
    assert good.regularization.loss.is_monotonic_increasing
    wrong_sign = nbdebug.check(
        model, (x, y), F.cross_entropy, reg=lambda lam: lambda o, t: F.cross_entropy(o, t) - lam * l2(model)
    )
    assert "reg-not-increasing-loss" in codes(wrong_sign)
    dropped = nbdebug.check(
        model, (x, y), F.cross_entropy, reg=lambda lam: lambda o, t: F.cross_entropy(o, t)
    )
    assert "reg-not-increasing-loss" in codes(dropped)


# --- check: bad input -> NbdebugError, nothing half-changed ------------------------------------


class Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(100, 10)  # wrong: the conv leaves 4*6*6 = 144 features

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_forward_error_names_the_layer_and_leaves_the_model_alone():
    model, (x, y) = Broken(), digits()
    snap = snapshot(model)
    with pytest.raises(NbdebugError, match=r"layer 'fc' \(Linear\) on input tuple\[Tensor\(64, 144\)"):
        nbdebug.check(model, (x, y), nn.CrossEntropyLoss())
    assert_same(model, snap)


def test_loss_not_scalar_meta_device_and_empty_loader():
    x, y = digits()
    with pytest.raises(NbdebugError, match="not a scalar.*Tensor\\(64,\\)"):
        nbdebug.check(cnn(), (x, y), nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(NbdebugError, match="meta device"):
        nbdebug.check(
            nn.Linear(3, 3, device="meta"), (torch.randn(2, 3), torch.zeros(2).long()), F.cross_entropy
        )
    empty = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:0], y[:0]), batch_size=4)
    with pytest.raises(NbdebugError, match="empty"):
        nbdebug.check(cnn(), empty, F.cross_entropy)


def test_state_restored_after_keyboard_interrupt_and_exception_in_the_loss():
    model, (x, y) = cnn(), digits()
    model.eval()
    opt = torch.optim.Adam(model.parameters())
    model(x).sum().backward()
    opt.step()
    snap = snapshot(model)
    opt_state = {k: v.clone() for k, v in opt.state[model[0].weight].items()}

    def interrupt(o, t):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nbdebug.check(model, (x, y), interrupt, optimizer=opt)
    assert_same(model, snap)

    def boom(o, t):
        return o.sum() / 0 + torch.tensor([1.0, 2.0]).sum() + o[10**6]

    with pytest.raises(NbdebugError, match="loss function boom failed"):
        nbdebug.check(model, (x, y), boom, optimizer=opt)
    assert_same(model, snap)
    assert all(torch.equal(opt.state[model[0].weight][k], v) for k, v in opt_state.items())


# --- gradcheck ------------------------------------------------------------------------------


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x**2


class WrongCube(Cube):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 2 * x**2  # the bug: d/dx x^3 is 3x^2


def test_gradcheck_catches_a_wrong_custom_backward():
    x = torch.randn(6, 3)
    bad = nbdebug.gradcheck(WrongCube, x)
    assert not bad.passed and bad.max_error == pytest.approx(1 / 3, rel=1e-4)
    f = bad.findings[0]
    assert f.code == "gradcheck-failed" and f.severity == "error" and "analytic" in f.message
    assert len(bad.worst) and bad.worst.rel_error.iloc[0] == pytest.approx(1 / 3, rel=1e-4)
    good = nbdebug.gradcheck(Cube, x)
    assert good.passed and good.max_error < 1e-7 and good.findings == []
    assert x.grad is None and x.dtype == torch.float32


def test_gradcheck_healthy_cnn_on_a_copy():
    model, (x, _) = cnn(), digits(4)
    snap = snapshot(model)
    result = nbdebug.gradcheck(model, x, max_entries=8)
    assert result.passed and result.max_error < 1e-4
    assert set(result.to_frame().role) == {"input", "parameter"}
    assert (result.rows.checked <= 8).all()
    assert next(model.parameters()).dtype == torch.float32
    assert_same(model, snap)
    assert "max relative error" in result._repr_mimebundle_()["text/html"]


def test_gradcheck_flags_kinks_instead_of_failing():
    x = torch.tensor([1e-7, -1e-7, 0.5, -0.5, 2e-7])
    result = nbdebug.gradcheck(torch.relu, x)
    assert result.passed
    assert result.rows.kinks.iloc[0] == 3
    assert result.notes and "kink" in result.notes[0]


def test_gradcheck_samples_large_tensors_and_passes_integer_inputs():
    layer = nn.Linear(300, 200)
    result = nbdebug.gradcheck(
        lambda a, t: F.cross_entropy(layer.double()(a), t), torch.randn(4, 300), torch.tensor([1, 2, 3, 4])
    )
    assert result.passed and list(result.rows.checked) == [20]
    big = nbdebug.gradcheck(nn.Linear(300, 200), torch.randn(2, 300), max_entries=5)
    assert big.rows.set_index("tensor").loc["weight", "checked"] == 5
    assert big.rows.set_index("tensor").loc["weight", "of"] == 60000


def test_gradcheck_bad_input():
    with pytest.raises(NbdebugError, match="nothing to check"):
        nbdebug.gradcheck(lambda t: t * 2.0, torch.arange(4))
    with pytest.raises(NbdebugError, match="meta device"):
        nbdebug.gradcheck(nn.Linear(2, 2, device="meta"), torch.randn(1, 2))
    with pytest.raises(NbdebugError, match="failed"):
        nbdebug.gradcheck(nn.Linear(3, 2), torch.randn(1, 4))


def test_figures_are_built_from_results_without_pyplot():
    import matplotlib.pyplot as plt

    from nbdebug.sanity.plot import gradcheck_figure, gradient_norms_figure

    before = plt.get_fignums()
    report = nbdebug.check(Unused(), (torch.randn(8, 4), torch.randint(0, 3, (8,))), nn.CrossEntropyLoss())
    fig = gradient_norms_figure(report)
    bars = fig.axes[0].patches
    assert len(bars) == 4 and sum(b.get_facecolor()[0] > 0.7 for b in bars) == 2  # two red: no gradient
    fig = gradcheck_figure(nbdebug.gradcheck(WrongCube, torch.randn(3)))
    assert fig.axes[0].get_xscale() == "log"
    assert plt.get_fignums() == before


def test_gradcheck_explains_a_float32_closure():
    layer = nn.Linear(3, 2)
    with pytest.raises(NbdebugError, match="pass the module"):
        nbdebug.gradcheck(lambda t: layer(t), torch.randn(2, 3))


@pytest.mark.parametrize(
    "loss, severity",
    [
        (2.303 + 1.25, None),  # within 0.5 * ln 10 + 0.1 of chance
        (2.303 + 1.26, "info"),  # a ResNet-18 at PyTorch's default init starts about here (3.6)
        (3 * 2.3026 - 0.01, "info"),
        (3 * 2.3026 + 0.01, "warning"),  # the hockey-stick start (makemore: 27 against ln 27 = 3.3)
        (2.303 - 1.26, "warning"),  # below chance before any training: a leak or a mis-specified loss
    ],
)
def test_initial_loss_severity_at_its_edges(loss, severity):
    from nbdebug._core.classes import initial_loss_severity

    assert initial_loss_severity(loss, math.log(10)) == severity


@pytest.mark.parametrize("bias, severity", [(4.0, "info"), (8.0, "warning")])
def test_a_moderately_overconfident_start_is_advice_not_an_alarm(bias, severity):
    """d2l's ResNet-18 (bench/bugs/cases/healthy/d2l_resnet.py) starts at ~1.6x ln 10 at PyTorch's default
    init and trains: `initial-loss` is info there. A constant logit of 4 on one class scores ~3.75 (1.6x
    ln 10: info, the check passes); a logit of 8 scores ~7.2 (over 3x: a warning)."""
    x, y = digits()
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].bias[0] = bias
    report = nbdebug.check(model, (x, y), nn.CrossEntropyLoss())
    f = next(f for f in report.findings if f.code == "initial-loss")
    assert f.severity == severity
    assert (3.56 < report.loss < 6.9) is (severity == "info")
