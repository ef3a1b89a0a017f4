"""predictions(): frequencies, top-k, findings and state handling, against what torch computes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.hooks import hook_counts
from nbdebug.predictions.compute import binary_logits
from nbdebug.predictions.report import PredictionReport, balanced_weights
from nbdebug.predictions.topk import TopkTracker, snapshot


def blobs(n=300, c=4, d=8, seed=0, weights=None):
    """Gaussian blobs: class c centred at 3*e_c, so a linear model separates them."""
    g = torch.Generator().manual_seed(seed)
    if weights is None:
        y = torch.arange(n) % c
    else:
        y = torch.multinomial(torch.tensor(weights, dtype=torch.float), n, replacement=True, generator=g)
    centres = 3 * torch.eye(c, d)
    x = centres[y] + torch.randn(n, d, generator=g)
    return x, y


def train(model, x, y, epochs=150, lr=0.1, loss_fn=None):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    for _ in range(epochs):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return model


def test_frequencies_topk_and_confusion_match_torch():
    x, y = blobs()
    model = nn.Linear(8, 4)
    r = nbdebug.predictions(model, (x, y), k=3, batch_size=64)
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    torch.testing.assert_close(r.probs, probs)
    preds = probs.argmax(1)
    f = r.frequencies
    assert list(f.columns[:3]) == ["class", "label_count", "label_freq"]
    np.testing.assert_allclose(f["label_freq"], np.bincount(y, minlength=4) / 300)
    np.testing.assert_allclose(f["pred_freq"], np.bincount(preds, minlength=4) / 300)
    np.testing.assert_allclose(f["mean_prob"], probs.mean(0).numpy(), rtol=1e-6)
    top = probs.topk(3, 1)
    assert list(r.topk["top1"]) == [str(i) for i in top.indices[:, 0].tolist()]
    np.testing.assert_allclose(r.topk[["p1", "p2", "p3"]].to_numpy(), top.values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        r.topk["loss"], nn.functional.cross_entropy(model(x), y, reduction="none").detach(), rtol=1e-5
    )
    assert r.accuracy == pytest.approx(float((preds == y).float().mean()))
    assert r.topk_accuracy == pytest.approx(float((top.indices == y[:, None]).any(1).float().mean()))
    cm = r.confusion.to_numpy()
    assert cm.sum() == 300 and (np.diag(cm).sum() / 300) == pytest.approx(r.accuracy)
    assert cm.sum(1).tolist() == np.bincount(y, minlength=4).tolist()
    np.testing.assert_allclose(r.mean_topk, top.values.mean(0).numpy(), rtol=1e-6)


@pytest.mark.slow
def test_healthy_trained_model_has_no_warning():
    x, y = blobs()
    model = train(nn.Linear(8, 4), x, y)
    r = nbdebug.predictions(model, (x, y))
    assert r.accuracy > 0.9
    assert [f for f in r.findings if f.severity in ("warning", "error")] == []
    assert "accuracy" in repr(r)


def test_model_forced_to_one_class_triggers_predicts_mode():
    x, y = blobs()
    model = nn.Linear(8, 4)
    with torch.no_grad():
        model.bias[2] = 50.0
    r = nbdebug.predictions(model, (x, y))
    (f,) = [f for f in r.findings if f.code == "predicts-mode"]
    assert f.severity == "warning"
    assert "100% of predictions are class '2', which is 25% of the labels" in f.message
    assert "shuffled" in f.hint  # balanced labels: the hint looks upstream, not at weighting
    assert not [f for f in r.findings if f.code == "class-imbalance"]


@pytest.mark.slow
def test_95_5_dataset_collapses_onto_the_mode_and_class_weights_fix_it():
    x, y = blobs(n=400, c=2, weights=[0.95, 0.05], seed=1)
    x = x * 0.35  # overlapping classes: the unweighted loss learns the mode
    plain = train(nn.Linear(8, 2), x, y, epochs=60, lr=0.05)
    r = nbdebug.predictions(plain, (x, y))
    (f,) = [f for f in r.findings if f.code == "class-imbalance"]
    counts = np.bincount(y, minlength=2)
    # it predicts the majority for every example: that collapse is predicts-mode (issue 19 class 5), with
    # the skew named as its cause (class-imbalance, info) and the weights in both hints
    (mode,) = [m for m in r.findings if m.code == "predicts-mode"]
    assert mode.severity == "warning" and "100% of predictions are class '0'" in mode.message
    assert r.frequencies["pred_count"][1] == 0
    assert f.severity == "info" and "under-predicts" in f.message and "see predicts-mode" in f.message
    assert f"weight=torch.tensor([{r.class_weights[0]:.4g}" in mode.hint
    expected = [float(f"{v:.4g}") for v in (400 / (2 * counts))]
    assert r.class_weights == expected and f.evidence["class_weights"] == expected
    assert "CrossEntropyLoss(weight=torch.tensor([" in f.hint and "FocalLoss" in f.hint
    assert r.frequencies["recall"][1] < 0.5
    torch.manual_seed(0)
    weighted = train(nn.Linear(8, 2), x, y, epochs=60, lr=0.05,
                     loss_fn=nn.CrossEntropyLoss(weight=torch.tensor(r.class_weights)))  # fmt: skip
    r2 = nbdebug.predictions(weighted, (x, y))
    assert r2.frequencies["recall"][1] > r.frequencies["recall"][1] + 0.3
    (f2,) = [f for f in r2.findings if f.code == "class-imbalance"]
    assert f2.severity == "info"  # still skewed data, but the model no longer ignores the rare class
    assert "predicts-mode" not in {f.code for f in r2.findings}


class Lookup(nn.Module):
    """Fixed class scores per example: input i (a float index) gets row i of `table`."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x.long().reshape(-1)]


def scripted(labels: list[int], preds: list[int], n_classes: int):
    """A model whose argmax is `preds[i]` on example i, and the data (i, labels[i])."""
    table = torch.zeros(len(preds), n_classes)
    table[torch.arange(len(preds)), torch.tensor(preds)] = 5.0
    return Lookup(table), (torch.arange(len(labels)).float().unsqueeze(1), torch.tensor(labels))


@pytest.mark.parametrize("minority_predicted, collapse", [(45, False), (35, True)])
def test_majority_nearly_always_is_predicts_mode_at_a_quarter_of_the_minority_share(
    minority_predicted, collapse
):
    """84/16 labels; the minority predicted for 45 of 1000 examples keeps 28% of its share (under-predicted:
    class-imbalance, a warning); for 35 (22%) the majority has soaked up the rest: predicts-mode, and the
    skew is named as the cause (class-imbalance, info)."""
    labels = [0] * 840 + [1] * 160
    preds = [0] * (1000 - minority_predicted) + [1] * minority_predicted
    r = nbdebug.predictions(*scripted(labels, preds, 2))
    codes = {f.code: f.severity for f in r.findings}
    assert ("predicts-mode" in codes) is collapse
    assert codes["class-imbalance"] == ("info" if collapse else "warning")


def test_a_vocabulary_is_not_an_imbalanced_task():
    """30 classes with Zipf-like label counts (a character or word vocabulary): the rare ones being
    under-predicted is the data's nature, not a bug; 3 such classes are an imbalanced task."""
    counts = [max(1, round(300 / (k + 1))) for k in range(30)]
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    preds = [c if c < 10 else 0 for c in labels]  # the 20 rarest classes never predicted
    r = nbdebug.predictions(*scripted(labels, preds, 30))
    assert {f.code: f.severity for f in r.findings} == {"class-imbalance": "info"}
    labels = [0] * 600 + [1] * 100 + [2] * 100
    preds = (
        [0] * 600 + [1] * 90 + [0] * 10 + [2] * 20 + [0] * 80
    )  # 86% class 0 on 75% of the labels: no collapse
    r = nbdebug.predictions(*scripted(labels, preds, 3))
    assert {f.code: f.severity for f in r.findings} == {"class-imbalance": "warning"}


def test_balanced_weights_give_absent_classes_the_largest_weight():
    assert balanced_weights([90, 10, 0]) == [0.5556, 5.0, 5.0]


def test_probabilities_and_log_probabilities_are_detected_not_softmaxed_twice():
    x, y = blobs(n=50)
    lin = nn.Linear(8, 4)
    expected = torch.softmax(lin(x), 1).detach()
    for head, kind in ((nn.Softmax(1), "probabilities"), (nn.LogSoftmax(1), "log-probabilities")):
        r = nbdebug.predictions(nn.Sequential(lin, head), (x, y))
        assert r.scores == kind
        torch.testing.assert_close(r.probs, expected, rtol=1e-5, atol=1e-6)


def test_dict_batches_dataset_classes_and_label_function():
    x, y = blobs(n=40)

    class DS(torch.utils.data.Dataset):
        classes = ["cat", "dog", "eel", "fox"]

        def __len__(self):
            return 40

        def __getitem__(self, i):
            return {"image": x[i], "label": y[i]}

    model = nn.Linear(8, 4)
    r = nbdebug.predictions(model, DS(), batch_size=16)
    assert r.classes == DS.classes and r.n == 40
    assert set(r.topk["label"]) == set(DS.classes)
    loader = torch.utils.data.DataLoader(DS(), batch_size=8)
    assert nbdebug.predictions(model, loader).classes == DS.classes
    r2 = nbdebug.predictions(
        model, iter([x[:20], x[20:]]), labels=y, classes={0: "a", 1: "b", 2: "c", 3: "d"}
    )
    assert r2.labels.tolist() == y.tolist() and r2.classes[0] == "a"
    r3 = nbdebug.predictions(model, [(x, y.float())], labels=lambda b: b[1].long())
    assert r3.labels.tolist() == y.tolist()


def test_no_labels_still_reports_prediction_frequencies():
    x, _ = blobs(n=30)
    r = nbdebug.predictions(nn.Linear(8, 4), x)
    assert r.labels is None and r.accuracy is None
    assert r.frequencies["label_freq"].isna().all()
    assert r.frequencies["pred_freq"].sum() == pytest.approx(1.0)
    with pytest.raises(NbdebugError, match="no labels"):
        r.select(mistakes=True)
    r._repr_mimebundle_()


def test_select_filters_mistakes_class_and_sorts():
    x, y = blobs(n=80)
    r = nbdebug.predictions(nn.Linear(8, 4), (x, y))
    rows = r.select(mistakes=True, sort="loss")
    assert all(r.topk["correct"].iloc[i] == False for i in rows)  # noqa: E712
    losses = r.losses[rows]
    assert (losses[:-1] >= losses[1:]).all()
    assert set(r.select(true_class="2")) == set(torch.nonzero(y == 2).flatten().tolist())
    conf = r.confidence[r.select(sort="confidence", descending=False)]
    assert (conf[:-1] <= conf[1:]).all()
    with pytest.raises(NbdebugError, match="sort must be"):
        r.select(sort="size")


def test_thousand_classes_stay_readable():
    x = torch.randn(64, 16)
    y = torch.randint(0, 1000, (64,))
    r = nbdebug.predictions(nn.Linear(16, 1000), (x, y))
    assert r.k == 5 and r.topk.shape[0] == 64
    top = r.top_classes()
    assert len(top) == 21 and top["class"].iloc[-1].startswith("other (980)")
    assert top["label_freq"].sum() == pytest.approx(1.0)
    assert "report.class_weights" not in r.to_text()  # no giant literal anywhere in the text
    r._repr_mimebundle_()


def test_binary_single_logit_via_binary_logits():
    x, y = blobs(n=60, c=2)
    model = nn.Linear(8, 1)
    with pytest.raises(NbdebugError, match=r"shape \(60, 1\).*output=nbdebug.binary_logits"):
        nbdebug.predictions(model, (x, y))
    r = nbdebug.predictions(model, (x, y), output=binary_logits)
    torch.testing.assert_close(r.probs[:, 1], torch.sigmoid(model(x)).detach()[:, 0])


class DictOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 4)

    def forward(self, x):
        return {"logits": self.lin(x), "features": x}


def test_bad_inputs_name_the_culprit():
    x, y = blobs(n=20)
    with pytest.raises(NbdebugError, match=r"dict with keys \['logits', 'features'\].*output='logits'"):
        nbdebug.predictions(DictOut(), (x, y))
    assert nbdebug.predictions(DictOut(), (x, y), output="logits").n == 20
    with pytest.raises(NbdebugError, match=r"output='nope' does not select"):
        nbdebug.predictions(DictOut(), (x, y), output="nope")
    with pytest.raises(NbdebugError, match=r"labels contain classes \[4, 5\] outside the model's 4 outputs"):
        nbdebug.predictions(nn.Linear(8, 4), (x, y + 2))
    with pytest.raises(NbdebugError, match=r"float values such as \[0\.5"):
        nbdebug.predictions(nn.Linear(8, 4), (x, torch.full((20,), 0.5)))
    with pytest.raises(NbdebugError, match=r"regression or a single-logit"):
        nbdebug.predictions(nn.Linear(8, 1), (x, torch.randn(20)))
    with pytest.raises(NbdebugError, match=r"classes has 2 names but the model outputs 4"):
        nbdebug.predictions(nn.Linear(8, 4), (x, y), classes=["a", "b"])
    with pytest.raises(NbdebugError, match=r"labels must be class indices .*list\[str, str"):
        nbdebug.predictions(nn.Linear(8, 4), x[:3], labels=["cat", "dog", "eel"])
    with pytest.raises(NbdebugError, match="must be a torch.nn.Module"):
        nbdebug.predictions(lambda t: t, (x, y))


def test_x_and_y_of_different_lengths_are_named_before_the_model_runs():
    """Issue 19 class 6: `(x, y)` with 100 inputs and 99 labels was read as a sequence of two batches
    and `y` was fed to the model (RuntimeError inside its first Linear)."""
    x, y = blobs(n=100)
    model = nn.Linear(8, 4)
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with pytest.raises(
        NbdebugError, match=r"x Tensor\(100, 8\) .* and y Tensor\(99,\) .*100 inputs, 99 targets"
    ):
        nbdebug.predictions(model, (x, y[:99]))
    with pytest.raises(NbdebugError, match=r"\(x1, x2, y\) whose first dimensions differ"):
        nbdebug.predictions(model, (x, x[:, :2], y[:50]))
    assert calls == []  # nothing reached the model
    # a list of batches of one kind (the last one shorter) is still a sequence of batches
    r = nbdebug.predictions(model, [x[:64], x[64:]], labels=y)
    assert r.n == 100 and len(calls) == 2


def test_nonfinite_outputs_are_reported_and_left_out():
    x, y = blobs(n=20)
    x[3, 0] = float("nan")
    r = nbdebug.predictions(nn.Linear(8, 4), (x, y))
    (f,) = [f for f in r.findings if f.code == "nonfinite"]
    assert f.severity == "error" and "first: example 3" in f.message
    assert r.n == 19 and 3 not in r.topk.index
    assert r.index[3] == 4  # rows skip the dropped example; inputs stay in data order
    everything = nbdebug.predictions(nn.Linear(8, 4), (torch.full((5, 8), float("nan")), y[:5]))
    assert everything.n == 0 and "0 examples" in repr(everything)
    everything._repr_mimebundle_()


class Recorder(nn.Module):
    """Dropout + BatchNorm, so eval mode and buffer restoration are observable."""

    def __init__(self, fail_at=None, exc=RuntimeError):
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.lin = nn.Linear(8, 4)
        self.calls = 0
        self.modes: list[bool] = []
        self.fail_at, self.exc = fail_at, exc

    def forward(self, x):
        self.calls += 1
        self.modes.append(self.training)
        if self.calls == self.fail_at:
            raise self.exc("boom")
        return self.lin(self.drop(self.bn(x)))


@pytest.mark.parametrize("fail_at,exc", [(None, None), (2, RuntimeError), (2, KeyboardInterrupt)])
def test_model_state_is_restored_on_success_exception_and_interrupt(fail_at, exc):
    x, y = blobs(n=100)
    model = Recorder(fail_at, exc or RuntimeError).train()
    model.drop.eval()  # a mixed per-module mode must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = hook_counts(model)
    rng = torch.get_rng_state()
    if fail_at is None:
        r = nbdebug.predictions(model, (x, y), batch_size=32)
        assert r.n == 100
    else:
        with pytest.raises(exc, match="boom"):
            nbdebug.predictions(model, (x, y), batch_size=32)
    assert model.modes and not any(model.modes)  # every forward ran in eval mode
    assert model.training and model.bn.training and not model.drop.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert hook_counts(model) == hooks
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.is_grad_enabled()


def test_name_stays_callable_after_the_submodule_is_imported():
    module = importlib.import_module("nbdebug.predictions.compute")

    assert isinstance(module.predictions(nn.Linear(8, 4), blobs(n=8)), PredictionReport)
    assert isinstance(nbdebug.predictions(nn.Linear(8, 4), blobs(n=8)), PredictionReport)


def test_tracker_matches_the_report_and_records_drift():
    x, y = blobs(n=120)
    model = nn.Linear(8, 4)
    r = nbdebug.predictions(model, (x, y), k=5)
    tracker = TopkTracker(k=5)
    with torch.no_grad():
        for i in range(0, 120, 50):
            tracker.update(model(x[i : i + 50]), y[i : i + 50])
    row = tracker.end_epoch()
    assert row["n"] == 120
    assert row["accuracy"] == pytest.approx(r.accuracy)
    assert row["true_prob"] == pytest.approx(float(r.probs[torch.arange(120), y].mean()), rel=1e-5)
    np.testing.assert_allclose([row[f"p{j}"] for j in range(1, 5)], r.mean_topk, rtol=1e-5)
    # over training the true-class probability rises epoch by epoch
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(4):
        for i in range(0, 120, 30):
            out = model(x[i : i + 30])
            tracker.update(out, y[i : i + 30])
            opt.zero_grad()
            nn.functional.cross_entropy(out, y[i : i + 30]).backward()
            opt.step()
        tracker.end_epoch()
    h = tracker.history
    assert list(h["epoch"]) == [0, 1, 2, 3, 4]
    assert h["true_prob"].is_monotonic_increasing
    assert snapshot(model(x).detach(), y)["accuracy"] > 0.5
    from nbdebug.predictions.plot import drift_figure

    assert drift_figure(h).axes


def test_predicts_mode_says_when_outputs_are_nearly_uniform():
    x, y = blobs()
    model = nn.Linear(8, 4)
    with torch.no_grad():
        model.weight.mul_(1e-3)
        model.bias.copy_(torch.tensor([0.0, 0.0, 0.05, 0.0]))  # a tiny bias decides every argmax
    (f,) = [f for f in nbdebug.predictions(model, (x, y)).findings if f.code == "predicts-mode"]
    assert "nearly uniform (mean top probability 0.26, chance 0.25)" in f.message


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only path: needs CUDA")
def test_cuda_model_predictions_filters_and_focal_loss():
    """GPU-only: a CUDA model is fed on its device, results come back on CPU, nothing moves."""
    x, y = blobs(n=100)
    model = nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 4, 3), nn.Flatten(), nn.Linear(24, 4)).cuda()
    r = nbdebug.predictions(model, (x, y))
    with torch.no_grad():
        expected = torch.softmax(model(x.cuda()), 1).cpu()
    torch.testing.assert_close(r.probs, expected)
    assert r.probs.device.type == "cpu" and next(model.parameters()).device.type == "cuda"
    v = nbdebug.filters(model, data=(x, y), example=2)
    assert v.weight.device.type == "cpu" and v.feature_maps.shape == (4, 6)
    logits, target = torch.randn(64, 5, device="cuda"), torch.randint(0, 5, (64,), device="cuda")
    w = torch.rand(5, device="cuda")
    torch.testing.assert_close(
        nbdebug.FocalLoss(gamma=0.0, alpha=w)(logits, target), nn.CrossEntropyLoss(weight=w)(logits, target)
    )
