"""PyTorch Lightning under `nbdebug.watch` and `NbdebugCallback`: the Trainer's own loop (closures, its
zero_grad placement, accumulation, bf16 autocast, the sanity check, validation) read as a plain loop is.

Each planted bug is trained twice, by the textbook loop and by `trainer.fit` over the same data order and
initial weights: both runs take the same steps, so the monitor must say the same thing in both.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

pl = pytest.importorskip("lightning.pytorch")

import nbdebug  # noqa: E402
from nbdebug._core import intercept as _intercept  # noqa: E402
from nbdebug._core.hooks import hook_counts  # noqa: E402
from tests.integration_models import (  # noqa: E402
    BUGS,
    EXPECTED,
    Net,
    make_opt,
    plain_run,
    quiet_lightning,
    setup,
)
from tests.watch_loops import codes, digits, loader, serious, single_thread  # noqa: E402, F401

pytestmark = pytest.mark.slow  # ecosystem tests: `make test` runs them, `make check` does not

quiet_lightning()


class Lit(pl.LightningModule):
    """The tests' Net as a LightningModule, the way the Lightning docs write one."""

    def __init__(self, bug: str = "healthy", opt: str = "adam", lr: float = 1e-3, fail_at: int = 0) -> None:
        super().__init__()
        self.net = Net(bug)
        self.opt, self.lr, self.fail_at = opt, lr, fail_at
        self.losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail_at and self.global_step + 1 >= self.fail_at:
            raise RuntimeError("boom in training_step")
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.losses.append(loss.item())
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return make_opt(self.opt, self.parameters(), self.lr)


def trainer(epochs: int, **kw) -> pl.Trainer:
    kw.setdefault("num_sanity_val_steps", 2)
    return pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kw,
    )  # fmt: skip


def lightning_run(bug: str, watched: bool = True, callback: bool = False, **trainer_kw):
    cfg = setup(bug)
    torch.manual_seed(0)
    lit = Lit(bug, cfg["opt"], cfg["lr"])
    train_dl = loader(*cfg["train"], batch_size=cfg["batch"], shuffle=False)
    val_dl = loader(*cfg["val"], batch_size=100, shuffle=False) if cfg["val"] else None
    if callback:
        cb = nbdebug.integrations.lightning.NbdebugCallback()
        trainer(cfg["epochs"], callbacks=[cb], **trainer_kw).fit(lit, train_dl, val_dl)
        return cb.watch, lit
    t = trainer(cfg["epochs"], **trainer_kw)
    if not watched:
        t.fit(lit, train_dl, val_dl)
        return None, lit
    with nbdebug.watch(lit) as w:
        t.fit(lit, train_dl, val_dl)
    return w, lit


@pytest.mark.parametrize("bug", BUGS)
def test_same_findings_as_the_plain_loop(bug):
    plain, _ = plain_run(bug)
    w, lit = lightning_run(bug)
    assert w.internal_errors == []
    assert w.steps == plain.steps and len(w.monitor.adopted) == 1
    # the same steps: Lightning's losses (read in training_step) are the monitor's, step by step
    assert w.history["loss"].tolist() == pytest.approx(lit.losses, rel=1e-6)
    assert w.history["loss"].tolist() == pytest.approx(plain.history["loss"].tolist(), rel=1e-4)
    assert w.history["grad_norm"].tolist() == pytest.approx(plain.history["grad_norm"].tolist(), rel=1e-4)
    assert codes(w) == codes(plain)
    if bug == "healthy":
        assert serious(w) == []
    else:
        assert EXPECTED[bug] in codes(w)


def test_validation_epochs_and_sanity_check():
    w, lit = lightning_run("healthy")
    ep = w.epochs
    # three epochs of 10 steps; the 2 sanity-check batches (200 examples) are left out of epoch 0
    assert list(ep["steps"]) == [10, 10, 10] and list(ep["val_n"]) == [200, 200, 200]
    lit.eval()
    x, y = setup("healthy")["val"]
    with torch.no_grad():
        acc = float((lit(x).argmax(1) == y).float().mean())
    assert ep["val_acc"].iloc[-1] == pytest.approx(acc)
    assert (w.history["backwards"] == 1).all() and w.monitor.analysis_backwards == 0


def test_same_weights_with_and_without_watch():
    _, a = lightning_run("healthy", watched=False)
    _, b = lightning_run("healthy", watched=True)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_gradient_accumulation():
    """accumulate_grad_batches=2: a step per two batches, whose loss is the mean of the two (Lightning
    divides each by 2 before backward); no leaked gradient, since Lightning zeroes after each step."""
    w, lit = lightning_run("healthy", accumulate_grad_batches=2)
    assert w.steps == 15 and (w.history["backwards"] == 2).all()
    pairs = [(a + b) / 2 for a, b in zip(lit.losses[::2], lit.losses[1::2])]
    assert w.history["loss"].tolist() == pytest.approx(pairs, rel=1e-5)
    assert serious(w) == [] and w.monitor.analysis_backwards == 0


def test_bf16_mixed_precision():
    w, lit = lightning_run("healthy", precision="bf16-mixed")
    assert w.steps == 30 and w.internal_errors == []
    assert w.history["loss"].tolist() == pytest.approx(lit.losses, rel=1e-6)
    assert all(math.isfinite(v) for v in w.history["grad_norm"])
    assert serious(w) == []


@pytest.mark.parametrize("bug", ["healthy", "softmax"])
def test_callback_gives_the_same_watch(bug):
    w, _ = lightning_run(bug)
    cbw, lit = lightning_run(bug, callback=True)
    assert isinstance(cbw, nbdebug.Watch) and not cbw.running
    assert codes(cbw) == codes(w) and cbw.steps == w.steps
    assert cbw.history["loss"].tolist() == pytest.approx(lit.losses, rel=1e-6)
    assert list(cbw.epochs["val_n"]) == [200, 200, 200]
    assert hook_counts(lit) == {} and not _intercept.installed()


def test_callback_detaches_when_training_raises():
    torch.manual_seed(0)
    lit = Lit(fail_at=4)
    cb = nbdebug.integrations.lightning.NbdebugCallback(every=2)
    cfg = setup("healthy")
    with pytest.raises(RuntimeError, match="boom in training_step"):
        trainer(1, callbacks=[cb]).fit(lit, loader(*cfg["train"], batch_size=64))
    assert cb.watch.steps == 3 and cb.watch.exc_type is RuntimeError and not cb.watch.running
    assert hook_counts(lit) == {} and not _intercept.installed()


def test_magic_watches_trainer_fit(ip):
    ip.run_cell(
        "import torch\n"
        "from tests.test_integration_lightning import Lit, trainer\n"
        "from tests.integration_models import setup\n"
        "from tests.watch_loops import loader\n"
        "torch.manual_seed(0)\n"
        "lit_module = Lit('softmax')\n"
        "train_dl = loader(*setup('healthy')['train'])\n"
    ).raise_error()
    w = ip.run_cell_magic("nn_watch", "lit_module --no-panel -o", "trainer(2).fit(lit_module, train_dl)")
    assert w.steps == 20 and "softmax-before-ce" in codes(w)
    assert hook_counts(ip.user_ns["lit_module"]) == {}


class FunctionalMLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(64, 64), torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class LitDirect(pl.LightningModule):
    """A LightningModule whose training_step calls its network directly (`self.net(x)`, not `self(x)`), whose
    ReLU is a function: the LightningModule's own forward never runs."""

    def __init__(self, dead: bool) -> None:
        super().__init__()
        self.net = FunctionalMLP()
        if dead:
            with torch.no_grad():
                self.net.fc1.bias.fill_(-20.0)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("dead", [False, True])
def test_activation_functions_are_seen_when_training_step_calls_the_network_directly(dead):
    """The activation functions are watched from the first layer of a sampled step to its loss when the
    model's own forward is not called: `relu(net.fc1)` has its rows and dead ReLUs are named (they were
    reported as vanishing gradients before), a healthy run stays silent, and no mode is left behind."""
    from nbdebug.monitor.watch import Watch

    x, y = digits()
    torch.manual_seed(0)
    lit = LitDirect(dead)
    with nbdebug.watch(lit) as w:
        trainer(2, num_sanity_val_steps=0).fit(lit, loader(x[:640], y[:640], batch_size=64, shuffle=False))
    assert isinstance(w, Watch) and w.internal_errors == []
    rows = w.layer_stats().set_index("layer").loc["relu(net.fc1)"]
    assert list(rows["step"]) == sorted(w.monitor.samples)
    assert ("dead-relu" in codes(w)) is dead
    if not dead:
        assert serious(w) == []
    assert w.monitor.probe.mode is None and torch.overrides._get_current_function_mode_stack() == []


class LitDirectTerm(pl.LightningModule):
    """training_step calls its network directly and adds a penalty on an auxiliary head to the loss, as the
    `.detach()`ed scalar of the bug (in the loss, none of its gradient) or as it should be. The network's
    ReLU is a module (the activation mode retires after the first sample) or a function (it stays on and
    shares the forward with the detached-term window)."""

    def __init__(self, detached: bool, functional: bool) -> None:
        super().__init__()
        self.net = FunctionalMLP() if functional else torch.nn.Sequential(
            torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)
        )  # fmt: skip
        self.aux = torch.nn.Linear(64, 1)
        self.detached = detached

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        penalty = self.aux(x).pow(2).mean()
        return F.cross_entropy(logits, y) + 0.1 * (penalty.detach() if self.detached else penalty)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("detached", [False, True])
def test_detached_loss_term_is_named_when_training_step_calls_the_network_directly(detached, functional):
    """The detached-term window opens at the first sampled leaf when the LightningModule's own forward never
    runs (it opened only at the end of the model's forward, so this bug went unnamed in Lightning): named
    with the plain loop's code, silent on the healthy module, and no mode is left on the stack after a
    step (every later call would pass through it)."""
    from nbdebug.monitor.detached import mode_pending

    x, y = digits()
    torch.manual_seed(0)
    lit = LitDirectTerm(detached, functional)
    seen_modes: list[int] = []
    cb = pl.Callback()
    cb.on_train_batch_end = lambda *a: seen_modes.append(
        len(torch.overrides._get_current_function_mode_stack())
    )
    with nbdebug.watch(lit) as w:
        trainer(1, num_sanity_val_steps=0, callbacks=[cb]).fit(
            lit, loader(x[:640], y[:640], batch_size=64, shuffle=False)
        )
    assert w.internal_errors == []
    assert ("loss-term-detached" in codes(w)) is detached
    if detached:
        f = next(f for f in w.findings if f.code == "loss-term-detached")
        assert f.evidence["passes"] >= 2
    else:
        assert serious(w) == []
    assert seen_modes == [0] * 10  # taken off after each step, not left for the next sampled forward
    assert not mode_pending() and torch.overrides._get_current_function_mode_stack() == []


class LitDirectLog0(LitDirect):
    """LitDirect whose training_step adds log(0) to the loss at its fourth step: -inf with every output of
    the network finite."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss + torch.log(torch.zeros(())) if batch_idx == 3 else loss


@pytest.mark.parametrize("case", ["nan batch 1", "nan batch 4", "log0 at 4"])
def test_nonfinite_loss_when_training_step_calls_the_network_directly(case):
    """Once a training step is seen to bypass the LightningModule's forward, the step's input for the
    non-finite replay is taken from the first of its children the step calls: a NaN in the batch of step 4 is
    named as the input, as in the plain loop (it was blamed on the loss computation, "every layer's output was
    finite", from a replay that never ran). At step 1, before that is known, the finding says the forward could
    not be replayed; a log(0) outside the network is put outside the submodule replayed, not in a layer."""
    x, y = digits()
    x = x[:640].clone()
    at = 1 if case == "nan batch 1" else 4
    if case.startswith("nan"):
        x[(at - 1) * 64, 0] = math.nan
    torch.manual_seed(0)
    lit = LitDirectLog0(dead=False) if case.startswith("log0") else LitDirect(dead=False)
    with nbdebug.watch(lit) as w:
        trainer(1, num_sanity_val_steps=0).fit(lit, loader(x, y[:640], batch_size=64, shuffle=False))
    assert w.internal_errors == []
    f = next(f for f in w.findings if f.code == "nonfinite")
    assert f.evidence["step"] == at
    if case == "nan batch 1":
        assert f.evidence["phase"] == "unreplayed" and f.where is None
        assert "could not be replayed" in f.message and "torch.isfinite" in f.hint
    elif case == "nan batch 4":
        assert f.where == "input" and "input batch itself" in f.message
    else:
        assert f.evidence["phase"] == "outside" and f.where is None
        assert "replaying net (the first of the model's submodules" in f.message and "-inf" in f.message
        assert "every layer" not in f.message and "training_step" in f.hint
    assert w.monitor._last_input is None  # no reference to a batch is kept past the run
