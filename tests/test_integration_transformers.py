"""The Hugging Face `Trainer` under `nbdebug.watch` and `NbdebugCallback`: a tiny BERT built from a config
(nothing downloaded), trained for a few epochs on a synthetic token task. What the monitor records is
checked against what the Trainer itself logs (`logging_steps=1`: loss, learning rate, step count)."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import transformers
from transformers import Trainer

import nbdebug
from nbdebug._core import intercept as _intercept
from nbdebug._core.hooks import hook_counts
from tests.hf_models import BertHead, TokenTask, tiny_bert, training_args
from tests.watch_loops import codes, serious, single_thread  # noqa: F401

pytestmark = pytest.mark.slow  # ecosystem tests: `make test` runs them, `make check` does not

transformers.logging.set_verbosity_error()
TRAIN, VAL = TokenTask(192), TokenTask(64, seed=1)


def hf_run(model, lr: float, epochs: int, tmp_path, watched: bool = True, callback=None, **args):
    trainer = Trainer(
        model=model,
        args=training_args(str(tmp_path), lr, epochs, **args),
        train_dataset=TRAIN,
        eval_dataset=VAL,
        callbacks=[callback] if callback is not None else None,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its evaluation dicts
        if watched and callback is None:
            with nbdebug.watch(model) as w:
                trainer.train()
        else:
            trainer.train()
            w = callback.watch if callback is not None else None
    logs = [h for h in trainer.state.log_history if "loss" in h and "step" in h]
    return w, logs


def test_healthy_trainer_run_is_silent_and_matches_the_trainers_logs(tmp_path):
    torch.manual_seed(0)
    model = tiny_bert()
    w, logs = hf_run(model, 1e-3, 4, tmp_path)
    assert serious(w) == [] and w.internal_errors == []
    assert w.steps == 48 == len(logs) and len(w.monitor.adopted) == 1
    h = w.history
    assert h["loss"].tolist() == pytest.approx([r["loss"] for r in logs], rel=1e-5)
    assert h["lr"].tolist() == pytest.approx([r["learning_rate"] for r in logs], rel=1e-6)
    assert (h["batch_size"] == 16).all() and (h["backwards"] == 1).all()
    ep = w.epochs
    assert list(ep["steps"]) == [12] * 4 and list(ep["val_n"]) == [64] * 4  # evaluation: validation
    assert ep["loss"].iloc[-1] < ep["loss"].iloc[0]


def test_same_weights_with_and_without_watch(tmp_path):
    states = []
    for watched in (False, True):
        torch.manual_seed(0)
        model = tiny_bert()
        hf_run(model, 1e-3, 1, tmp_path, watched=watched)
        states.append(model.state_dict())
    a, b = states
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_accumulation(tmp_path):
    """gradient_accumulation_steps=2: one step per two batches. The loss of a step is what was
    backpropagated over its window, which is what the Trainer logs (this model's loss is not divided by
    the window: the Trainer leaves that to models that accept `num_items_in_batch`)."""
    torch.manual_seed(0)
    w, logs = hf_run(tiny_bert(), 1e-3, 2, tmp_path, gradient_accumulation_steps=2)
    assert w.steps == 12 == len(logs) and (w.history["backwards"] == 2).all()
    assert w.history["loss"].tolist() == pytest.approx([r["loss"] for r in logs], rel=1e-5)
    assert w.monitor.analysis_backwards == 0 and "grad-not-zeroed" not in codes(w)


@pytest.mark.parametrize(
    ("bug", "code"), [("softmax", "softmax-before-ce"), ("frozen", "no-grad"), ("healthy", None)]
)
def test_planted_bugs_in_a_users_head(tmp_path, bug, code):
    torch.manual_seed(0)
    w, _ = hf_run(BertHead(bug), 1e-3, 3, tmp_path)
    assert w.internal_errors == []
    if code is None:
        assert not {"softmax-before-ce", "no-grad"} & codes(w)
    else:
        assert code in codes(w)
    if bug == "frozen":
        f = next(f for f in w.findings if f.code == "no-grad")
        assert all(p.startswith("bert.") for p in f.evidence["params"])


def test_dead_relu_in_the_feed_forward_layers(tmp_path):
    torch.manual_seed(0)
    w, _ = hf_run(tiny_bert(dead_relu=True), 1e-3, 3, tmp_path)
    dead = sorted(f.where for f in w.findings if f.code == "dead-relu")
    assert dead == [f"bert.encoder.layer.{i}.intermediate.intermediate_act_fn" for i in (0, 1)]


def _lr_run(tmp_path, factor: float):
    torch.manual_seed(0)
    return hf_run(tiny_bert(), 1e-3 * factor, 4, tmp_path)


def test_learning_rate_10000x_too_high_reaches_the_rules(tmp_path):
    """The issue's case: a tiny BERT at 10,000x the learning rate that trains it (1e-3 -> 10). What the
    rules need is recorded: the loss far above chance (ln 2) after the first steps, the lr the Trainer used
    at each step, and update/weight ratios of order 1 where ~1e-3 is healthy."""
    w, logs = _lr_run(tmp_path, 10_000)
    h = w.history
    assert h["loss"].iloc[0] == pytest.approx(math.log(2), abs=0.02)
    assert w.epochs["loss"].iloc[0] > 20 * math.log(2)  # the first epoch's mean loss
    assert h["lr"].iloc[0] == 10.0 and h["lr"].tolist() == pytest.approx([r["learning_rate"] for r in logs])
    ratios = w.layer_stats().groupby("step")["update_ratio"].median()
    assert ratios.iloc[0] > 0.5  # the first update is as large as the weights themselves
    assert serious(w) != []  # not silent; which code names it is the rules' decision (next test)


@pytest.mark.parametrize("factor", [100, 10_000])
def test_learning_rate_too_high_is_named(tmp_path, factor):
    """The Trainer at 100x and 10000x its learning rate: the cause is named (the saturated activations
    and vanishing gradients it leads to are its evidence, not findings of their own)."""
    w, _ = _lr_run(tmp_path, factor)
    assert {"lr-too-high", "loss-diverging"} & codes(w)
    assert {f.code for f in w.findings if f.severity != "info"} <= {"lr-too-high", "loss-diverging"}
    assert not {"saturated-activation", "vanishing-gradients"} & codes(w)


def test_callback_gives_the_same_watch(tmp_path):
    torch.manual_seed(0)
    plain, _ = hf_run(BertHead("softmax"), 1e-3, 2, tmp_path)
    torch.manual_seed(0)
    model = BertHead("softmax")
    cb = nbdebug.integrations.transformers.NbdebugCallback(every=10)
    w, logs = hf_run(model, 1e-3, 2, tmp_path, callback=cb)
    assert isinstance(w, nbdebug.Watch) and not w.running
    assert w.steps == plain.steps == len(logs) and codes(w) == codes(plain)
    assert w.history["loss"].tolist() == pytest.approx([r["loss"] for r in logs], rel=1e-5)
    assert cb.findings == w.findings
    assert hook_counts(model) == {} and not _intercept.installed()
