"""The classification loss's input space: softmax-before-ce (CrossEntropyLoss and NLLLoss), nll-without-
log-softmax, softmax-wrong-dim, log-softmax-unstable, judged on what the loss really received.

The inputs are what PyTorch's own softmax / log_softmax produce, nudged just inside and just outside the
1e-3 tolerance of the catalogue; the loops are real training loops on the digits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug._core.loss_space import TOL, judge, log_of_softmax
from tests.watch_loops import codes, digits, mlp, serious, single_thread  # noqa: F401  (autouse fixture)

NEW = {"softmax-before-ce", "nll-without-log-softmax", "softmax-wrong-dim", "log-softmax-unstable"}


def _logits(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 2


def _code(loss: str, x: torch.Tensor, target=None) -> str | None:
    space = judge(loss, x, target)
    return space.code if space is not None else None


# -- judge: each side of the tolerance -------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_probabilities_over_the_classes_at_the_edge(loss):
    p = F.softmax(_logits(16, 5), 1)
    assert _code(loss, p) == "softmax-before-ce"
    inside = p.clone()
    inside[3] *= 1 + TOL / 2  # a row summing to 1.0005: still a softmax within float error
    assert _code(loss, inside) == "softmax-before-ce"
    outside = p.clone()
    outside[3] *= 1 + 2 * TOL  # 1.002: no longer rows of probabilities
    assert _code(loss, outside) != "softmax-before-ce"


def test_nll_on_log_probabilities_and_on_raw_scores_at_the_edge():
    x = _logits(16, 5)
    lp = F.log_softmax(x, 1)
    assert _code("nll_loss", lp) is None  # the healthy NLLLoss input
    assert _code("nll_loss", lp - TOL / 2) is None  # logsumexp 0.0005 off: within tolerance
    assert _code("nll_loss", lp - 2 * TOL) == "nll-without-log-softmax"  # all <= 0, but rows sum to 0.998
    raw = judge("nll_loss", x)
    assert raw is not None and raw.code == "nll-without-log-softmax"
    assert raw.evidence["max"] == pytest.approx(float(x.max())) and raw.evidence["rows_off"] == 1.0
    assert _code("cross_entropy", x) is None  # raw scores are what CrossEntropyLoss wants


def test_nll_rows_the_target_ignores_are_not_evidence():
    lp = F.log_softmax(_logits(8, 5), 1)
    padded = lp.clone()
    padded[6:] = 0.0  # padding positions, masked to 0, with target ignore_index
    target = torch.tensor([0, 1, 2, 3, 4, 0, -100, -100])
    assert _code("nll_loss", padded, target) is None
    target[6] = 1  # one padded row that the loss does read: not log-probabilities
    assert _code("nll_loss", padded, target) == "nll-without-log-softmax"


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("loss", ["cross_entropy", "nll_loss"])
def test_softmax_over_the_batch_at_the_edge(loss, log):
    x = _logits(16, 5)
    y = F.log_softmax(x, 0) if log else F.softmax(x, 0)
    space = judge(loss, y)
    assert space is not None and space.code == "softmax-wrong-dim" and space.evidence["dim"] == 0
    assert space.evidence["log"] is log
    per = space.evidence["deviation_per_dim"]
    assert per[0]["logsumexp" if log else "sum"] < 1e-5 and per[1]["logsumexp" if log else "sum"] > 0.1
    off = y.clone()
    off[:, 2] = off[:, 2] - 2 * TOL if log else off[:, 2] * (1 + 2 * TOL)  # one column no longer normalized
    assert _code(loss, off) != "softmax-wrong-dim"
    near = y.clone()
    near[:, 2] = near[:, 2] - TOL / 2 if log else near[:, 2] * (1 + TOL / 2)
    assert _code(loss, near) == "softmax-wrong-dim"


def test_per_pixel_and_sequence_inputs():
    img = _logits(4, 3, 6, 6)
    assert _code("nll_loss", F.log_softmax(img, 1)) is None  # segmentation: classes on dim 1
    assert _code("cross_entropy", img) is None
    assert _code("nll_loss", img) == "nll-without-log-softmax"  # the NLLLoss docs example without LogSoftmax
    seq = _logits(4, 7, 9)  # (N, C, T)
    assert _code("nll_loss", F.log_softmax(seq, 1)) is None
    wrong = judge("nll_loss", F.log_softmax(seq, 2))  # normalized over time
    assert wrong is not None and wrong.code == "softmax-wrong-dim" and wrong.evidence["dim"] == 2


def test_a_batch_of_one_says_nothing_about_dim_0():
    x = _logits(1, 5)
    assert _code("nll_loss", F.log_softmax(x, 0)) is None  # all zeros: dim 0 and dim 1 cannot be told apart
    assert _code("cross_entropy", F.softmax(x, 0)) is None  # all ones
    assert _code("nll_loss", F.log_softmax(x, 1)) is None
    assert _code("cross_entropy", F.softmax(x, 1)) == "softmax-before-ce"  # rows of one still sum to 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_rounding_is_not_evidence(dtype):
    """A bfloat16 log_softmax over 1000 classes has logsumexp ~0.01 off 0: still log-probabilities."""
    x = _logits(64, 1000).to(dtype)
    assert _code("nll_loss", F.log_softmax(x, 1)) is None
    assert _code("cross_entropy", F.softmax(x, 1)) == "softmax-before-ce"
    assert _code("nll_loss", F.log_softmax(x, 0)) == "softmax-wrong-dim"
    assert _code("nll_loss", x) == "nll-without-log-softmax"


def test_what_cannot_be_judged():
    assert judge("nll_loss", torch.full((4, 3), float("nan"))) is None
    assert judge("cross_entropy", _logits(8, 1)) is None  # one class
    assert judge("mse_loss", F.softmax(_logits(8, 3), 1)) is None
    assert judge("nll_loss", torch.zeros(0, 3)) is None


def test_log_of_softmax_reads_the_softmax_output_from_the_graph():
    x = (_logits(4, 5) * 100).requires_grad_()
    loss = F.nll_loss(torch.log(F.softmax(x, 1)), torch.zeros(4, dtype=torch.long))
    probs = log_of_softmax(loss)
    assert probs is not None and torch.equal(probs, F.softmax(x, 1).detach())
    assert log_of_softmax(F.nll_loss(F.log_softmax(x, 1), torch.zeros(4, dtype=torch.long))) is None
    eps = F.nll_loss(torch.log(F.softmax(x, 1) + 1e-8), torch.zeros(4, dtype=torch.long))
    assert log_of_softmax(eps) is None  # log(p + eps) never reaches -inf


# -- watch -----------------------------------------------------------------------------------------


def nll(o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(o, y)  # looked up at call time: the watch sees F.nll_loss while it listens


def ce(o: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(o, y)


def _loop(head, loss_fn, *, steps: int = 12, scale: float = 1.0, val=None, batch: int = 32):
    torch.manual_seed(0)
    x, y = digits()
    x = x * scale
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with nbdebug.watch(model, opt) as w:
        for i in range(steps):
            xb, yb = x[i * batch : (i + 1) * batch], y[i * batch : (i + 1) * batch]
            opt.zero_grad()
            loss_fn(head(model(xb)), yb).backward()
            opt.step()
        if val is not None:
            model.eval()
            with torch.no_grad():
                val(model(x[1500:1600]), y[1500:1600])
    return w


@pytest.mark.parametrize(
    ("head", "loss_fn", "code"),
    [
        (lambda o: o, nll, "nll-without-log-softmax"),
        (lambda o: F.log_softmax(o, 0), nll, "softmax-wrong-dim"),
        (nn.LogSoftmax(dim=0), nn.NLLLoss(), "softmax-wrong-dim"),
        (lambda o: F.softmax(o, 0), ce, "softmax-wrong-dim"),
        (lambda o: F.softmax(o, 1), nn.NLLLoss(), "softmax-before-ce"),
    ],
    ids=["nll-raw", "log-softmax-dim0", "LogSoftmax-dim0-module", "softmax-dim0-ce", "softmax-nll"],
)
def test_watch_names_the_wrong_space_at_the_first_step(head, loss_fn, code):
    w = _loop(head, loss_fn)
    f = next(f for f in w.findings if f.code == code)
    assert f.severity == "error" and f.evidence["step"] == 1
    assert not (NEW - {code}) & codes(w)


@pytest.mark.parametrize(
    ("head", "loss_fn"),
    [
        (lambda o: F.log_softmax(o, 1), nll),
        (lambda o: o, nn.CrossEntropyLoss()),
        (lambda o: o, nn.CrossEntropyLoss(label_smoothing=0.1)),
        (lambda o: o, lambda o, y: F.cross_entropy(o, F.one_hot(y, 10).float() * 0.9 + 0.01)),  # soft targets
        (lambda o: F.log_softmax(o, -1), nn.NLLLoss()),
    ],
    ids=["log_softmax-nll", "ce-logits", "label-smoothing", "soft-targets", "log_softmax-last-dim"],
)
def test_watch_is_silent_on_the_right_space(head, loss_fn):
    w = _loop(head, loss_fn)
    assert not NEW & codes(w)
    assert serious(w) == []


def test_watch_batch_of_one_is_silent():
    w = _loop(lambda o: F.log_softmax(o, 1), nll, batch=1, steps=20)
    assert not NEW & codes(w)


def test_watch_sees_a_softmax_before_the_validation_loss():
    bug = _loop(lambda o: o, ce, val=lambda o, y: F.cross_entropy(F.softmax(o, 1), y))
    f = next(f for f in bug.findings if f.code == "softmax-before-ce")
    assert f.where == "cross_entropy (validation)"
    # the floor it states is what PyTorch computes for perfectly confident probabilities
    perfect = F.softmax(torch.eye(10) * 1e4, 1)
    floor = float(F.cross_entropy(perfect, torch.arange(10)))
    assert f.evidence["loss_floor"] == pytest.approx(floor, rel=1e-5)
    ok = _loop(lambda o: o, ce, val=lambda o, y: F.cross_entropy(o, y))
    assert "softmax-before-ce" not in codes(ok)


def test_watch_names_log_of_softmax_when_it_reaches_minus_inf():
    """pytorch/pytorch#1620: inputs x200 make a softmax probability round to 0; log gives -inf."""
    bug = _loop(lambda o: torch.log(F.softmax(o, 1)), nll, scale=200.0)
    f = next(f for f in bug.findings if f.code == "log-softmax-unstable")
    assert f.evidence["zeros"] > 0 and f.evidence["step"] >= 1
    assert "nonfinite" not in codes(bug)  # the NaN it causes is folded into the cause
    stable = _loop(lambda o: F.log_softmax(o, 1), nll, scale=200.0)
    assert not NEW & codes(stable)
    # log(softmax) on small logits never underflows: not a bug yet, nothing to say
    small = _loop(lambda o: torch.log(F.softmax(o, 1)), nll)
    assert not NEW & codes(small)
    assert serious(small) == []


# -- check -----------------------------------------------------------------------------------------


def _check(head: nn.Module, loss_fn, scale: float = 1.0):
    x, y = digits()
    return nbdebug.check(nn.Sequential(mlp(), head), (x[:32] * scale, y[:32]), loss_fn)


def test_check_names_each_wrong_space():
    assert "nll-without-log-softmax" in {f.code for f in _check(nn.Identity(), nn.NLLLoss()).findings}
    assert "softmax-wrong-dim" in {f.code for f in _check(nn.LogSoftmax(dim=0), nn.NLLLoss()).findings}
    assert "softmax-before-ce" in {f.code for f in _check(nn.Softmax(dim=1), nn.NLLLoss()).findings}
    for head, loss in [(nn.LogSoftmax(dim=1), nn.NLLLoss()), (nn.Identity(), nn.CrossEntropyLoss())]:
        assert not NEW & {f.code for f in _check(head, loss).findings}


class _LogOfSoftmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.softmax(x, 1))


def test_check_names_log_of_softmax_that_underflows():
    bug = _check(_LogOfSoftmax(), nn.NLLLoss(), scale=200.0)
    f = next(f for f in bug.findings if f.code == "log-softmax-unstable")
    assert f.evidence["zeros"] > 0
    assert "log-softmax-unstable" not in {f.code for f in _check(_LogOfSoftmax(), nn.NLLLoss()).findings}


# -- watch_gan: the loss calls of an auxiliary classifier (AC-GAN) ---------------------------------


class _AuxD(nn.Module):
    """A discriminator with a real/fake logit and a 4-class auxiliary head ending in `head`."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2))
        self.dis, self.aux, self.head = nn.Linear(32, 1), nn.Linear(32, 4), head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.dis(h).view(-1), self.head(self.aux(h))


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (nn.Softmax(dim=1), "softmax-before-ce"),
        (nn.Identity(), "nll-without-log-softmax"),
        (nn.LogSoftmax(dim=0), "softmax-wrong-dim"),
        (nn.LogSoftmax(dim=1), None),
    ],  # fmt: skip
    ids=["softmax", "raw", "dim0", "log_softmax"],
)
def test_watch_gan_reads_the_auxiliary_loss(head, code):
    torch.manual_seed(0)
    real = torch.randn(512, 2)
    label = (real[:, 0] > 0).long() * 2 + (real[:, 1] > 0).long()
    g = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    d = _AuxD(head)
    opt_d, opt_g = torch.optim.Adam(d.parameters(), 2e-4), torch.optim.Adam(g.parameters(), 2e-4)
    bce, aux = nn.BCEWithLogitsLoss(), nn.NLLLoss()
    with nbdebug.watch_gan(d, g, opt_d, opt_g) as w:
        for i in range(0, 512, 64):
            x, y = real[i : i + 64], label[i : i + 64]
            opt_d.zero_grad()
            dis, cls = d(x)
            fake = g(torch.randn(64, 8))
            dis_f, _ = d(fake.detach())
            (bce(dis, torch.ones(64)) + aux(cls, y) + bce(dis_f, torch.zeros(64))).backward()
            opt_d.step()
            opt_g.zero_grad()
            dis_f, _ = d(fake)
            bce(dis_f, torch.ones(64)).backward()
            opt_g.step()
    found = {f.code for f in w.findings} & NEW
    assert found == ({code} if code else set())
