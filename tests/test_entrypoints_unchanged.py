"""Every public entry point that touches a model leaves it unchanged: on success, when something inside
raises, and on KeyboardInterrupt; checked with tests/unchanged.py on models of the zoo.

Entry points and models (what each can take):
- `check`, `overfit`, `memory.step`, `predictions`: classifiers (a CNN, BatchNorm in train mode,
  pruning, parametrizations, shared and tied weights, hooks, a Hugging Face BERT);
- `gradcheck`: small float models (it works on a float64 copy);
- `filters`: conv models (plain, pruned, weight-normed, a ResNet);
- `watch` / `watch_gan` on exit: the user's loop trains, so weights, gradients, optimizer state and the
  RNG are the loop's to change; everything else (hooks, patched functions, modes, global state) must be
  as before, and a loop under watch must end where the same loop without it ends.

The failures are raised by the user's code where each entry point calls it: a loss function, a
callback, or a forward pre-hook the user had registered before the call (a "tripwire" that raises on its
n-th call); KeyboardInterrupt must come out as KeyboardInterrupt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from tests import zoo
from tests.unchanged import assert_unchanged, snapshot

pytestmark = pytest.mark.slow  # the whole zoo: run by `make test`, not by `make check`

OUTCOMES = ("success", "exception", "interrupt")
TRAINED = {"values", "grads", "optimizer_state", "state_dict", "rng"}  # what a user's training loop changes


class Boom(RuntimeError):
    """The user's code failing."""


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _raise(outcome: str) -> None:
    raise (KeyboardInterrupt if outcome == "interrupt" else Boom)("raised by the user's code")


def _expected(outcome: str) -> tuple[type[BaseException], ...]:
    # an entry point may wrap the user's error in an NbdebugError that names it; an interrupt must stay one
    return (KeyboardInterrupt,) if outcome == "interrupt" else (Boom, NbdebugError)


def _call(outcome: str, fn: Callable[[], Any]) -> Any:
    if outcome == "success":
        return fn()
    with pytest.raises(_expected(outcome)) as info:
        fn()
    if outcome == "exception" and isinstance(info.value, NbdebugError):
        assert "raised by the user's code" in str(info.value) or isinstance(info.value.__cause__, Boom)
    return None


class Tripwire:
    """A forward pre-hook the user registered before the call: raises on the n-th forward pass when armed."""

    def __init__(self, model: nn.Module, outcome: str, at: int = 1) -> None:
        self.outcome, self.at, self.calls = outcome, at, 0
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: Any) -> None:
        self.calls += 1
        if self.outcome != "success" and self.calls >= self.at:
            _raise(self.outcome)

    def __deepcopy__(self, memo: dict) -> Tripwire:
        return self  # gradcheck deep-copies the model: the copy's hook is this same tripwire


@dataclasses.dataclass
class Classifier:
    """A zoo model as a classifier: its batch of n examples and the loss to train it with."""

    name: str
    classes: int
    loss: Callable[[Any, torch.Tensor], torch.Tensor] = F.cross_entropy
    output: Any = None  # predictions(output=...): how to read the logits


def _logits(out: Any) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out


CLASSIFIERS = {
    "ti_single_input_net": Classifier("ti_single_input_net", 10, F.nll_loss),
    "classic_densenet_train": Classifier("classic_densenet_train", 10),
    "classic_resnet_basic": Classifier("classic_resnet_basic", 10),
    "hard_pruned_cnn": Classifier("hard_pruned_cnn", 4),
    "hard_weight_norm": Classifier("hard_weight_norm", 4),
    "hard_spectral_norm_train": Classifier("hard_spectral_norm_train", 4),
    "hard_shared_block_and_tied": Classifier("hard_shared_block_and_tied", 16),
    "hard_user_hooks": Classifier("hard_user_hooks", 4),
    "classic_resnext_bottleneck_train": Classifier("classic_resnext_bottleneck_train", 10),
    "classic_mnist_net_train": Classifier("classic_mnist_net_train", 10, F.nll_loss),
    "hf_bert_classifier_train": Classifier(
        "hf_bert_classifier_train", 3, lambda out, y: F.cross_entropy(out.logits, y), output="logits"
    ),
}


def build(name: str, n: int = 8) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The zoo model and a batch of `n` examples shaped like its zoo input, with class labels."""
    entry = zoo.get(name)
    for req in entry.requires:
        pytest.importorskip(req)
    model, args, kwargs = zoo.build(entry)
    x0 = args[0] if args else kwargs["input_ids"]
    g = torch.Generator().manual_seed(1)
    if x0.is_floating_point():
        x = torch.randn(n, *x0.shape[1:], generator=g, dtype=x0.dtype)
    else:
        x = torch.randint(3, int(x0.max()) + 1, (n, *x0.shape[1:]), generator=g)
    y = torch.randint(0, CLASSIFIERS[name].classes if name in CLASSIFIERS else 2, (n,), generator=g)
    return model, x, y


def _with_grads(model: nn.Module, x: torch.Tensor, loss: Callable, y: torch.Tensor) -> None:
    """Gradients the user already has: entry points that run backward must put them back."""
    loss(model(x), y).backward()


# Failures known today, xfail(strict=True) so that a fix shows up as XPASS: (entry point, model, outcome) -> why
KNOWN: dict[tuple[str, str, str], str] = {}


def _cases(models: list[str], entry_point: str) -> list[Any]:
    out = []
    for m in models:
        for o in OUTCOMES:
            reason = KNOWN.get((entry_point, m, o))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(m, o, id=f"{m}-{o}", marks=marks))
    return out


# ------------------------------------------------------------------------------------------------------
# check


CHECK_MODELS = ["ti_single_input_net", "classic_densenet_train", "hard_pruned_cnn", "hard_shared_block_and_tied",
                "hf_bert_classifier_train"]  # fmt: skip


@pytest.mark.parametrize(("name", "outcome"), _cases(CHECK_MODELS, "check"))
def test_check(name: str, outcome: str) -> None:
    model, x, y = build(name)
    c = CLASSIFIERS[name]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _with_grads(model, x, c.loss, y)
    opt.step()  # momentum buffers exist: check must not touch the user's optimizer state
    _with_grads(
        model, x, c.loss, y
    )  # fresh gradients, and the pruning hooks' `weight` recomputed after the step
    before = snapshot(model, optimizers=[opt])

    def loss(out, target):
        if outcome != "success":
            _raise(outcome)
        return c.loss(out, target)

    _call(outcome, lambda: nbdebug.check(model, (x, y), loss, optimizer=opt))
    assert_unchanged(model, before, optimizers=[opt])


# ------------------------------------------------------------------------------------------------------
# overfit


OVERFIT_MODELS = [
    "ti_single_input_net",
    "hard_weight_norm",
    "hard_spectral_norm_train",
    "hf_bert_classifier_train",
]


@pytest.mark.parametrize(("name", "outcome"), _cases(OVERFIT_MODELS, "overfit"))
def test_overfit(name: str, outcome: str) -> None:
    model, x, y = build(name, n=12)
    c = CLASSIFIERS[name]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = snapshot(model, optimizers=[opt])
    calls = {"loss": 0}

    def loss(out, target):  # the exception: from the loss, on the third call (inside the training loop)
        calls["loss"] += 1
        if outcome == "exception" and calls["loss"] >= 3:
            _raise(outcome)
        return c.loss(out, target)

    def callback(result) -> None:  # the interrupt: from the callback, after the second epoch
        if outcome == "interrupt" and len(result.history) >= 2:
            _raise(outcome)

    _call(
        outcome,
        lambda: nbdebug.overfit(
            model, (x, y), loss, n=12, optimizer=opt, max_epochs=4, time_budget=20, callback=callback
        ),  # fmt: skip
    )
    assert_unchanged(model, before, optimizers=[opt])


# ------------------------------------------------------------------------------------------------------
# gradcheck


GRADCHECK_MODELS = ["classic_lenet5", "hard_weight_norm", "hard_user_hooks"]


@pytest.mark.parametrize(("name", "outcome"), _cases(GRADCHECK_MODELS, "gradcheck"))
def test_gradcheck(name: str, outcome: str) -> None:
    model, x, _ = build(name, n=2)
    wire = Tripwire(model, outcome)
    before = snapshot(model)
    _call(outcome, lambda: nbdebug.gradcheck(model, x, max_entries=3))
    assert_unchanged(model, before)
    wire.handle.remove()


# ------------------------------------------------------------------------------------------------------
# memory.step


STEP_MODELS = [
    "ti_single_input_net",
    "classic_resnext_bottleneck_train",
    "hard_pruned_cnn",
    "hard_shared_block_and_tied",
]


@pytest.mark.parametrize(("name", "outcome"), _cases(STEP_MODELS, "memory.step"))
def test_memory_step(name: str, outcome: str) -> None:
    model, x, y = build(name)
    c = CLASSIFIERS[name]
    _with_grads(model, x, c.loss, y)
    before = snapshot(model)

    def loss(out, target):
        if outcome != "success":
            _raise(outcome)
        return c.loss(out, target)

    _call(outcome, lambda: nbdebug.memory.step(model, (x, y), loss))
    assert_unchanged(model, before)


# ------------------------------------------------------------------------------------------------------
# predictions


PREDICTION_MODELS = [
    "classic_resnet_basic",
    "hard_pruned_cnn",
    "classic_densenet_train",
    "hf_bert_classifier_train",
]


@pytest.mark.parametrize(("name", "outcome"), _cases(PREDICTION_MODELS, "predictions"))
def test_predictions(name: str, outcome: str) -> None:
    model, x, y = build(name, n=12)
    wire = Tripwire(model, outcome, at=2)  # fails on the second batch
    before = snapshot(model)
    _call(
        outcome,
        lambda: nbdebug.predictions(model, (x, y), k=2, batch_size=4, output=CLASSIFIERS[name].output),
    )
    assert_unchanged(model, before)
    wire.handle.remove()


# ------------------------------------------------------------------------------------------------------
# filters


FILTER_MODELS = [("ti_single_input_net", "conv1"), ("hard_pruned_cnn", "conv1"), ("hard_weight_norm", "conv1"),
                 ("classic_resnet_basic", None)]  # fmt: skip
FILTER_CASES = [(m, layer, o) for m, layer in FILTER_MODELS for o in OUTCOMES]


@pytest.mark.parametrize(
    ("name", "layer", "outcome"), FILTER_CASES, ids=[f"{m}-{o}" for m, _, o in FILTER_CASES]
)
def test_filters(name: str, layer: str | None, outcome: str) -> None:
    model, x, _ = build(name, n=3)
    wire = Tripwire(model, outcome)
    before = snapshot(model)
    _call(outcome, lambda: nbdebug.filters(model, layer, data=x, example=1))
    assert_unchanged(model, before)
    wire.handle.remove()


# ------------------------------------------------------------------------------------------------------
# watch and watch_gan: on exit


WATCH_MODELS = ["classic_mnist_net_train", "hard_user_hooks", "classic_densenet_train"]


def _train(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, loss: Callable,
           steps: int, fail: str = "success", fail_at: int = 2) -> None:  # fmt: skip
    for i in range(steps):
        opt.zero_grad()
        loss(
            model(x[i::steps] if len(x) >= 2 * steps else x), y[i::steps] if len(y) >= 2 * steps else y
        ).backward()
        opt.step()
        if fail != "success" and i == fail_at:
            _raise(fail)


@pytest.mark.parametrize(("name", "outcome"), _cases(WATCH_MODELS, "watch"))
def test_watch_on_exit(name: str, outcome: str) -> None:
    c = CLASSIFIERS[name]
    model, x, y = build(name, n=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    before = snapshot(model, optimizers=[opt])
    # the exception: raised by the loop body; the interrupt: by the live callback the panel would use
    on_update = None
    if outcome == "interrupt":

        def on_update(w) -> None:
            if w.steps >= 2:
                _raise(outcome)

    def run() -> None:
        with nbdebug.watch(model, opt, loss_fn=c.loss, every=1, on_update=on_update, update_interval=0.0):
            _train(
                model, opt, x, y, c.loss, steps=4, fail="exception" if outcome == "exception" else "success"
            )

    _call(outcome, run)
    assert_unchanged(model, before, optimizers=[opt], ignore=TRAINED)
    if outcome == "success":  # same seed, same final weights and RNG with and without watch
        watched_state = {k: v.clone() for k, v in model.state_dict().items()}
        bare, bx, by = build(name, n=16)
        bare_opt = torch.optim.SGD(bare.parameters(), lr=0.05, momentum=0.9)
        _train(bare, bare_opt, bx, by, c.loss, steps=4)
        assert all(torch.equal(watched_state[k], v) for k, v in bare.state_dict().items())


def _gan() -> tuple[nn.Module, nn.Module, torch.optim.Optimizer, torch.optim.Optimizer]:
    G, _, _ = zoo.build(zoo.get("classic_dcgan_generator"))
    D, _, _ = zoo.build(zoo.get("classic_dcgan_discriminator_train"))
    G.train()
    od = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    og = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return D, G, od, og


def _gan_loop(D, G, od, og, steps: int, fail: str = "success") -> None:
    bce = nn.BCELoss()
    g = torch.Generator().manual_seed(3)
    for i in range(steps):
        real = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
        od.zero_grad()
        fake = G(torch.randn(4, 16, 1, 1, generator=g))
        (bce(D(real), torch.ones(4)) + bce(D(fake.detach()), torch.zeros(4))).backward()
        od.step()
        og.zero_grad()
        bce(D(fake), torch.ones(4)).backward()
        og.step()
        if fail != "success" and i == 1:
            _raise(fail)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_watch_gan_on_exit(outcome: str) -> None:
    D, G, od, og = _gan()
    before_d, before_g = snapshot(D, optimizers=[od]), snapshot(G, optimizers=[og])

    def run() -> None:
        with nbdebug.watch_gan(D, G, od, og, every=1, samples_every=1, n_samples=4):
            _gan_loop(D, G, od, og, steps=3, fail=outcome)

    _call(outcome, run)
    assert_unchanged(D, before_d, optimizers=[od], ignore=TRAINED)
    assert_unchanged(G, before_g, optimizers=[og], ignore=TRAINED)
    if (
        outcome == "success"
    ):  # G's fixed-noise samples come from a private generator: the user's RNG is not used
        rng_watched = torch.get_rng_state()
        watched = {k: v.clone() for k, v in G.state_dict().items()}
        D2, G2, od2, og2 = _gan()
        _gan_loop(D2, G2, od2, og2, steps=3)
        assert all(torch.equal(watched[k], v) for k, v in G2.state_dict().items())
        assert torch.equal(rng_watched, torch.get_rng_state())


# ------------------------------------------------------------------------------------------------------
# trace: the model's own error goes to .error; an interrupt propagates; the model is unchanged either way

TRACE_MODELS = ["ti_single_input_net", "hard_pruned_cnn", "hard_user_hooks", "classic_densenet_train"]
TRACE_CASES = [
    pytest.param(m, d, o, id=f"{m}-{d or 'real'}-{o}")
    for m in TRACE_MODELS
    for d in (None, "meta")
    for o in OUTCOMES
]


@pytest.mark.parametrize(("name", "device", "outcome"), TRACE_CASES)
def test_trace(name: str, device: str | None, outcome: str) -> None:
    model, x, _ = build(name, n=2)
    wire = Tripwire(model, outcome)
    before = snapshot(model)
    if outcome == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            nbdebug.trace(model, x, device=device)
    else:
        t = nbdebug.trace(model, x, device=device)
        assert (t.error is None) == (outcome == "success")
        if t.error is not None:  # the step whose hook the tripwire is: the root (the model's own pre-hook)
            assert "raised by the user's code" in t.error.message
            assert t.error.step == 0 and t.steps[0].status == "error", t.error
    assert_unchanged(model, before)
    wire.handle.remove()
