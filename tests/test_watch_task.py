"""nbdebug.watch reads the task before it speaks (issues 14 item 5 and 19 classes 3-5):

- `class-imbalance` stays silent on a language model's Zipf-skewed next-token targets and when the fix is
  already in place (class weights, pos_weight, a focal loss, a WeightedRandomSampler) and the rare class is
  predicted; it warns on an imbalanced task trained without any fix whose rare class is ignored;
- a model that predicts one class nearly always is `predicts-mode`, imbalanced labels or not;
- `loss-oscillating` compares the wiggle with what the batch size explains.

The rules are tested at the edge of their evidence on `RunData` built by hand, and end to end on healthy
programs copied from tutorials and textbooks (a word-level LSTM language model as in pytorch/examples, the
char-RNN of the PyTorch tutorial trained one name at a time, class-weighted training as in the PyTorch
imbalanced-data tutorial, regression on fresh random batches as in pytorch/examples/regression) and on
the buggy programs next to them.
"""

from __future__ import annotations

import math
import string

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug.monitor.label_checks import LM_CLASSES, check_labels
from nbdebug.monitor.loss_checks import check_loss_curve
from nbdebug.monitor.rundata import RunData
from nbdebug.monitor.stats import StepRecord
from nbdebug.monitor.task import PeriodClasses, Spread, TaskEvidence
from nbdebug.monitor.wiggle import step_wiggle
from tests.watch_loops import digits, loader, mlp, single_thread  # noqa: F401  (autouse fixture)


def run_of(task: TaskEvidence, final: bool = False, steps=(), periods=()) -> RunData:
    return RunData(
        steps=list(steps), samples={}, layer_order=[], input_stats=[], nonfinite_events=[], leaked_params={},
        never_grad=set(), n_params=1, loss_calls=[], periods=list(periods), final=final, task=task,
    )  # fmt: skip


def found(run: RunData) -> dict[str, str]:
    return {f.code: f.severity for f in check_labels(run)}


def period(labels, preds, hits=None, loss=math.nan, value=math.nan) -> PeriodClasses:
    """One period's counts; `loss` is both its plain and its (any) cross-entropy; `value` the loss calls'
    mean (NaN: unknown)."""
    hits = list(hits or [min(a, b) for a, b in zip(labels, preds)])
    return PeriodClasses(list(labels), list(preds), hits, loss, loss, value)


# -- predicts-mode: the edge of the evidence ------------------------------------------------------------


@pytest.mark.parametrize("share, fires", [(0.79, False), (0.81, True)])
def test_predicts_mode_at_80_percent_of_the_predictions(share, fires):
    labels = [100] * 10
    top = round(1000 * share)
    preds = [top] + [(1000 - top) // 9] * 9
    task = TaskEvidence(n_classes=10, target_counts=[300] * 10, periods=[period(labels, preds)] * 2)
    assert ("predicts-mode" in found(run_of(task))) is fires
    assert "class-imbalance" not in found(run_of(task))  # balanced labels: no imbalance to blame


@pytest.mark.parametrize("minority_share, fires", [(0.045, False), (0.035, True)])
def test_on_skewed_labels_the_majority_absorbing_the_rest_is_predicts_mode(minority_share, fires):
    """84/16 labels: predicting the majority 96.5% of the time (the minority keeps 22% of its share) is a
    collapse; at 95.5% (28% of its share) it is under-prediction, class-imbalance's business."""
    labels, n = [840, 160], 1000
    preds = [round(n * (1 - minority_share)), round(n * minority_share)]
    task = TaskEvidence(
        n_classes=2, target_counts=[2520, 480], periods=[period(labels, preds)] * 2, binary=True
    )
    codes = found(run_of(task))
    assert ("predicts-mode" in codes) is fires
    assert codes["class-imbalance"] == "warning"  # the cause when collapsed, the finding when not
    task.fixes = ["BCEWithLogitsLoss(pos_weight=...)"]
    codes = found(run_of(task))
    assert ("predicts-mode" in codes) is fires  # a collapse is one whatever the loss
    assert codes.get("class-imbalance") == (None if fires else "info")  # the fix is there: no alarm


def test_predicts_mode_needs_two_periods_while_running_and_one_at_the_end():
    collapsed, healthy = period([100] * 10, [910] + [10] * 9), period([100] * 10, [100] * 10)
    task = TaskEvidence(n_classes=10, target_counts=[300] * 10, periods=[healthy, collapsed])
    assert "predicts-mode" not in found(run_of(task))  # one epoch collapsed, the one before was not
    assert "predicts-mode" in found(run_of(task, final=True))  # the run ended collapsed
    task.periods = [collapsed, collapsed]
    assert "predicts-mode" in found(run_of(task))


@pytest.mark.parametrize("loss_over_entropy, fires", [(0.89, False), (0.91, True)])
def test_a_language_model_collapses_only_at_the_entropy_of_its_labels(loss_over_entropy, fires):
    """A word LM's argmax is the frequent token for most positions early on; it has collapsed only if
    its loss is no better than a model that ignores its input (the entropy of the label frequencies)."""
    labels = [400, 200, 130, 100, 80] + [4] * 50
    h = -sum(c / sum(labels) * math.log(c / sum(labels)) for c in labels)
    p = period(labels, [sum(labels) - 54] + [1] * 54, loss=loss_over_entropy * h)
    task = TaskEvidence(n_classes=55, target_counts=[3 * c for c in labels], periods=[p, p])
    codes = found(run_of(task, final=True))
    assert ("predicts-mode" in codes) is fires
    assert "class-imbalance" not in codes  # Zipf-skewed targets are not a bug
    assert found(run_of(task)) == {}  # while it trains, a unigram phase is no verdict


@pytest.mark.parametrize("loss_over_uniform, live", [(0.96, False), (0.94, True)])
def test_a_collapse_at_the_uniform_loss_is_judged_when_the_run_ends(loss_over_uniform, live):
    """Outputs still about uniform (cross-entropy near ln C): the network has learned nothing yet and its
    argmax is noise; healthy tutorials sit there for epochs before they learn. At the end of a run of 3
    periods it counts; at the end of a 2-period run still at the uniform loss it does not (a short run)."""
    collapsed = period([100] * 10, [910] + [10] * 9, loss=loss_over_uniform * math.log(10))
    task = TaskEvidence(n_classes=10, target_counts=[300] * 10, periods=[collapsed, collapsed])
    assert ("predicts-mode" in found(run_of(task))) is live
    assert ("predicts-mode" in found(run_of(task, final=True))) is live
    task.periods.append(collapsed)
    assert "predicts-mode" in found(run_of(task, final=True))


@pytest.mark.parametrize("fell_by, live", [(0.04, False), (0.02, True)])
def test_a_collapse_while_the_loss_still_falls_is_judged_when_the_run_ends(fell_by, live):
    """Still learning (the loss fell by more than 3% over the last period): the predictions may move on."""
    before = period([100] * 10, [910] + [10] * 9, loss=1.5, value=1.5)
    after = period([100] * 10, [910] + [10] * 9, loss=1.5, value=1.5 * (1 - fell_by))
    task = TaskEvidence(n_classes=10, target_counts=[300] * 10, periods=[before, after])
    assert ("predicts-mode" in found(run_of(task))) is live
    assert "predicts-mode" in found(run_of(task, final=True))


# -- class-imbalance: the edge of the evidence ----------------------------------------------------------


def imbalanced(ratio: float, rare_pred_share: float, fixes=(), n_classes: int = 3) -> TaskEvidence:
    counts = [round(100 * ratio)] + [100] * (n_classes - 1)
    m = sum(counts)
    rare = [counts[1] / m * rare_pred_share] * (n_classes - 1)
    preds = [round(1000 * (1 - sum(rare)))] + [round(1000 * r) for r in rare]
    labels = [round(1000 * c / m) for c in counts]
    return TaskEvidence(
        n_classes=n_classes, target_counts=counts, periods=[period(labels, preds)] * 2, fixes=list(fixes)
    )


@pytest.mark.parametrize("ratio, warns", [(4.9, False), (5.0, True)])
def test_class_imbalance_from_a_5_to_1_label_ratio(ratio, warns):
    assert found(run_of(imbalanced(ratio, 0.3))).get("class-imbalance") == ("warning" if warns else None)


@pytest.mark.parametrize("predicted, severity", [(0.49, "warning"), (0.51, "info")])
def test_class_imbalance_warns_when_the_rare_class_is_predicted_less_than_half_as_often(predicted, severity):
    assert found(run_of(imbalanced(6, predicted))) == {"class-imbalance": severity}


@pytest.mark.parametrize("fix", ["CrossEntropyLoss(weight=...)", "WeightedRandomSampler", "FocalLoss()"])
def test_with_the_fix_in_place_class_imbalance_is_advice_or_silence(fix):
    assert found(run_of(imbalanced(6, 0.3, [fix]))) == {"class-imbalance": "info"}  # still under-predicted
    assert found(run_of(imbalanced(6, 0.8, [fix]))) == {}  # the rare class is predicted: nothing to say


@pytest.mark.parametrize("n_classes, speaks", [(LM_CLASSES, True), (LM_CLASSES + 1, False)])
def test_a_vocabulary_is_not_an_imbalanced_task(n_classes, speaks):
    task = imbalanced(6, 0.3, n_classes=n_classes)
    assert ("class-imbalance" in found(run_of(task))) is speaks
    task = imbalanced(6, 0.3)
    task.sequence = True  # (N, C, T) scores with (N, T) targets
    assert found(run_of(task)) == {}


# -- loss-oscillating: the wiggle against what the batch size explains ------------------------------------


def wiggly(wiggle: float, spread: Spread | None, batch: int = 32, trend: float = 0.0):
    """Two blocks of 25 steps, the last wiggling from step to step by `wiggle` (std / mean of independent
    values: alternate steps +-wiggle/sqrt(2) apart from each other) around a mean of 1, plus a linear `trend`
    through the block."""
    a = wiggle / math.sqrt(2)
    last = [1.0 + a * (1 if i % 2 else -1) + trend * (12 - i) / 12 for i in range(25)]
    steps = [
        StepRecord(step=i + 1, loss=v, batch_size=batch, backwards=1) for i, v in enumerate([1.0] * 25 + last)
    ]
    return run_of(TaskEvidence(spread=spread), steps=steps, periods=[(1, 25), (26, 50)])


def oscillating(run: RunData) -> bool:
    return "loss-oscillating" in {f.code for f in check_loss_curve(run)}


def test_the_wiggle_is_measured_from_step_to_step():
    assert step_wiggle([1.0, 2.0] * 10) == pytest.approx(1 / math.sqrt(2))
    assert step_wiggle([float(i) for i in range(20)]) == pytest.approx(1 / math.sqrt(2))  # a trend: small


@pytest.mark.parametrize("observed, fires", [(0.78, False), (0.82, True)])
def test_wiggle_twice_what_sampling_explains_is_oscillation(observed, fires):
    # per-example losses spread 2.4 x their mean, 36 examples a step: sampling explains std/mean 0.4
    spread = Spread(mean=1.0, std=2.4, rows=36, steps=25)
    assert oscillating(wiggly(observed, spread)) is fires


@pytest.mark.parametrize("observed, fires", [(0.28, False), (0.32, True)])
def test_a_wiggle_needs_to_be_visible(observed, fires):
    spread = Spread(mean=1.0, std=0.5, rows=256, steps=25)  # sampling explains 0.03
    assert oscillating(wiggly(observed, spread)) is fires


def test_a_trend_within_the_period_is_no_wiggle():
    spread = Spread(mean=1.0, std=0.5, rows=256, steps=25)
    assert not oscillating(wiggly(0.1, spread, trend=0.9))  # falls from 1.9 to 0.1 through the block
    assert oscillating(wiggly(0.5, spread, trend=0.9))


def test_one_example_per_step_wiggles_by_sampling_alone():
    assert not oscillating(wiggly(1.5, Spread(mean=1.0, std=math.nan, rows=1, steps=25), batch=1))
    assert not oscillating(wiggly(1.5, None, batch=1))


def test_without_per_example_losses_the_spread_is_taken_as_the_mean():
    # hand-written loss, batch 16: sampling explains std/mean 1 / sqrt(16) = 0.25, twice that is 0.5
    assert not oscillating(wiggly(0.48, None, batch=16))
    assert oscillating(wiggly(0.52, None, batch=16))
    assert not oscillating(wiggly(0.9, None, batch=4))  # batch 4: 0.5 explained, 1.0 allowed


# -- end to end: healthy programs people copy stay silent ---------------------------------------------------


def serious(w, codes=("class-imbalance", "predicts-mode", "loss-oscillating")) -> list[str]:
    return [f"{f.code}: {f.message}" for f in w.findings if f.code in codes and f.severity != "info"]


def zipf_text(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Token ids with Zipf(1) frequencies and learnable structure (each word has three likely successors)."""
    g = torch.Generator().manual_seed(seed)
    unigram = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float64)
    succ = torch.multinomial(unigram.expand(vocab, -1), 3, replacement=True, generator=g)
    draws = torch.multinomial(unigram, n, replacement=True, generator=g)
    follow = torch.rand(n, generator=g) < 0.6
    pick = torch.randint(0, 3, (n,), generator=g)
    out = draws.clone()
    for i in range(1, n):
        if follow[i]:
            out[i] = succ[out[i - 1], pick[i]]
    return out


class WordLM(nn.Module):
    """pytorch/examples word_language_model's RNNModel, small: embedding, LSTM, decoder."""

    def __init__(self, vocab: int, d: int = 32) -> None:
        super().__init__()
        self.encoder, self.rnn, self.decoder = nn.Embedding(vocab, d), nn.LSTM(d, d), nn.Linear(d, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rnn(self.encoder(x))[0])


@pytest.mark.parametrize("layout", ["flat", "sequence"])
def test_word_language_model_is_silent_and_one_that_ignores_its_input_collapses(layout):
    """Batches of (bptt=35, batch=20) tokens, CrossEntropyLoss on the flattened (35*20, V) scores as the
    example does ('flat'), or on (N, V, T) scores with (N, T) targets ('sequence')."""
    vocab, bptt, batch = 200, 35, 20
    text = zipf_text(bptt * batch * 20 + 1, vocab)
    for ignore_input in (False, True):
        torch.manual_seed(0)
        model = WordLM(vocab)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        with nbdebug.watch(model, opt) as w:
            for _epoch in range(3):
                for i in range(20):
                    chunk = text[i * bptt * batch : (i + 1) * bptt * batch + 1]
                    x, y = chunk[:-1].view(batch, bptt).t(), chunk[1:].view(batch, bptt).t()
                    out = model(x * 0 if ignore_input else x)  # (bptt, batch, vocab)
                    if layout == "flat":
                        loss = F.cross_entropy(out.reshape(-1, vocab), y.reshape(-1))
                    else:
                        loss = F.cross_entropy(out.permute(1, 2, 0), y.t())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                w.epoch()
        codes = {f.code: f.severity for f in w.findings}
        assert "class-imbalance" not in codes
        if ignore_input:
            assert codes.get("predicts-mode") == "warning"
        else:
            assert serious(w) == []
            assert w.history["loss"].iloc[-1] < 0.8 * w.history["loss"].iloc[0]  # it learned


def test_char_rnn_one_name_at_a_time_is_silent():
    """The PyTorch tutorial 'Generating Names with a Character-Level RNN': one name per step, the NLLLoss of
    every next letter summed over the name, rnn.zero_grad(), backward, and SGD with lr 0.005 (the tutorial
    writes the update by hand, p.data.add_(p.grad.data, alpha=-lr): the same step)."""
    letters = string.ascii_lowercase + "'"
    n_letters = len(letters) + 1
    g = torch.Generator().manual_seed(0)
    syllables = ["ka", "to", "mi", "ra", "shi", "no", "be", "lu", "an", "el", "or", "is"]
    names = ["".join(syllables[int(i)] for i in torch.randint(0, 12, (int(k),), generator=g)) for k in torch.randint(1, 4, (150,), generator=g)]  # fmt: skip

    class RNN(nn.Module):
        def __init__(self, hidden: int = 64) -> None:
            super().__init__()
            self.hidden_size = hidden
            self.i2h = nn.Linear(n_letters + hidden, hidden)
            self.i2o = nn.Linear(n_letters + hidden, n_letters)
            self.softmax = nn.LogSoftmax(dim=1)

        def forward(self, x: torch.Tensor, h: torch.Tensor):
            xh = torch.cat((x, h), 1)
            return self.softmax(self.i2o(xh)), torch.tanh(self.i2h(xh))

    torch.manual_seed(0)
    rnn, criterion = RNN(), nn.NLLLoss()
    opt = torch.optim.SGD(rnn.parameters(), lr=0.005)
    with nbdebug.watch(rnn, opt) as w:
        for it in range(300):
            name = names[it % len(names)]
            idx = [letters.index(c) for c in name]
            inputs = F.one_hot(torch.tensor(idx), n_letters).float().unsqueeze(1)
            targets = torch.tensor(idx[1:] + [n_letters - 1]).unsqueeze(-1)
            hidden = torch.zeros(1, rnn.hidden_size)
            rnn.zero_grad()
            loss = 0
            for i in range(len(idx)):
                output, hidden = rnn(inputs[i], hidden)
                loss += criterion(output, targets[i])
            loss.backward()
            opt.step()
    assert w.steps == 300
    assert serious(w) == []


def _imbalanced_digits():
    x, y = digits()
    keep = (y == 0) | (torch.arange(len(y)) % 8 == 0)  # class 0 kept whole, the others 1 in 8: ~9:1
    return x[keep], y[keep]


def _train_digits(x, y, loss_fn, sampler=None, epochs=3, lr=1e-3, loss_module=None):
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ds = torch.utils.data.TensorDataset(x, y)
    dl = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=sampler is None, sampler=sampler)
    with nbdebug.watch(model, opt, loss_module) as w:
        for _ in range(epochs):
            for xb, yb in dl:
                opt.zero_grad()
                loss_fn(model(xb), yb).backward()
                opt.step()
    with torch.no_grad():
        pred = model(x).argmax(1)
    recall = [float(((pred == c) & (y == c)).sum() / (y == c).sum()) for c in range(10)]
    return w, recall


def test_class_weighted_and_resampled_training_is_silent_and_unweighted_is_named():
    """The PyTorch tutorial 'Classifying an imbalanced dataset': weights in the loss, or a
    WeightedRandomSampler drawing 1 / class count. Without either, the rare classes are ignored."""
    x, y = _imbalanced_digits()
    counts = torch.bincount(y, minlength=10).float()
    weighted, recall = _train_digits(x, y, nn.CrossEntropyLoss(weight=counts.sum() / (10 * counts)))
    assert min(recall[1:]) > 0.2  # the rare classes are predicted
    assert serious(weighted) == []
    by_sample = (1.0 / counts)[y]
    sampler = torch.utils.data.WeightedRandomSampler(
        by_sample, len(by_sample), generator=torch.Generator().manual_seed(0)
    )
    resampled, recall = _train_digits(x, y, nn.CrossEntropyLoss(), sampler=sampler)
    assert min(recall[1:]) > 0.1 and serious(resampled) == []
    plain, recall = _train_digits(x, y, nn.CrossEntropyLoss())
    assert max(recall[1:]) < 0.1  # the bug: the rare classes are ignored
    codes = {f.code: f for f in plain.findings}
    assert codes["class-imbalance"].severity == "warning"
    assert codes["class-imbalance"].evidence["counts"] == [3 * int(c) for c in counts]  # 3 epochs of labels
    assert codes["predicts-mode"].severity == "warning"  # it predicts class 0 for (nearly) everything
    assert "CrossEntropyLoss(weight=torch.tensor([" in codes["class-imbalance"].hint


def test_focal_loss_module_counts_as_the_fix():
    x, y = _imbalanced_digits()
    focal = nbdebug.FocalLoss(gamma=2.0, alpha=(torch.bincount(y).sum() / (10 * torch.bincount(y))).tolist())
    w, recall = _train_digits(x, y, focal, loss_module=focal)
    assert [f.code for f in w.findings if f.code == "class-imbalance" and f.severity == "warning"] == []


@pytest.mark.parametrize("pos_weight", [None, 84 / 16])
def test_binary_imbalance_with_and_without_pos_weight(pos_weight):
    """An 84/16 binary task with BCEWithLogitsLoss: without pos_weight the positives are under-predicted
    (class-imbalance); with pos_weight = n_negative / n_positive the run is silent."""
    g = torch.Generator().manual_seed(1)
    y = (torch.rand(3000, generator=g) < 0.16).float()
    x = torch.randn(3000, 16, generator=g)
    x[:, :4] += 0.6 * y[:, None]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor([pos_weight]))
    with nbdebug.watch(model, opt) as w:
        for _ in range(4):
            for xb, yb in loader(x, y, batch_size=64):
                opt.zero_grad()
                loss_fn(model(xb).squeeze(1), yb).backward()
                opt.step()
    with torch.no_grad():
        recall = float(((model(x).squeeze(1) > 0) & (y == 1)).sum() / (y == 1).sum())
    codes = {f.code: f.severity for f in w.findings}
    if pos_weight is None:
        assert recall < 0.4 and codes["class-imbalance"] == "warning"
    else:
        assert recall > 0.6 and serious(w) == []


def test_regression_on_fresh_heavy_tailed_batches_is_silent():
    """pytorch/examples/regression: a fresh random batch every step (here with Student-t inputs, whose
    rare huge values make the squared errors heavy-tailed); the loss wiggles by sampling alone."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    w_true, t = torch.tensor([[1.0], [-2.0], [0.5], [3.0]]), torch.distributions.StudentT(3.0)
    with nbdebug.watch(model, opt) as w:
        for _ in range(400):
            x = t.sample((32, 4))
            y = x @ w_true + torch.randn(32, 1)
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
    assert serious(w) == []


@pytest.mark.parametrize("batch, opt", [(16, "sgd"), (4, "adam")])
def test_small_batches_wiggle_by_sampling_and_stay_silent(batch, opt):
    """The PyTorch 'Training a classifier' tutorial trains with batch 4 (SGD 0.001, momentum 0.9); small
    batches wiggle a lot, by as much as their size explains."""
    x, y = digits()
    torch.manual_seed(0)
    model = mlp()
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nbdebug.watch(model, optimizer) as w:
        for _ in range(2):
            for xb, yb in loader(x[:600], y[:600], batch_size=batch):
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
    assert w.steps >= 75
    assert serious(w) == []


# -- what the loss calls tell ---------------------------------------------------------------------------


def test_per_example_losses_are_the_loss_recomputed_with_reduction_none():
    from nbdebug._core import intercept

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 7, 5, generator=g)  # (N, C, T) scores
    t = torch.randint(0, 7, (4, 5), generator=g)
    t[0, :2] = -100  # ignored positions
    rows = intercept.per_example("cross_entropy", x, t, {})
    full = F.cross_entropy(x, t, reduction="none")
    expected = [float(full[i][t[i] != -100].mean()) for i in range(4)]
    assert rows.tolist() == pytest.approx(expected)
    assert intercept.per_example("mse_loss", x, x * 2, {"reduction": "sum"}).tolist() == pytest.approx(
        (x**2).reshape(4, -1).mean(1).tolist()
    )
    t[1] = -100
    assert math.isnan(intercept.per_example("cross_entropy", x, t, {})[1])  # nothing left to average
    assert intercept.per_example("mse_loss", x[0, 0, 0], x[0, 0, 0], {}) is None  # no row per example
    assert intercept.per_example("cross_entropy", x[0], t[0, 0], {}) is None  # a call that cannot run


def test_a_positional_class_weight_is_seen_as_the_fix():
    """`F.cross_entropy(out, y, w)` passes the weight positionally: the listener gets it as weight=."""
    x, y = _imbalanced_digits()
    counts = torch.bincount(y, minlength=10).float()
    w = counts.sum() / (10 * counts)
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nbdebug.watch(model, opt) as watch:
        for xb, yb in loader(x, y):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb, w).backward()
            opt.step()
    assert watch._run_data(final=True).task.fixes == ["CrossEntropyLoss(weight=...)"]


@pytest.mark.parametrize("loss_over_uniform, live", [(0.96, False), (0.5, True)])
def test_an_untrained_networks_rare_classes_are_judged_when_the_run_ends(loss_over_uniform, live):
    task = imbalanced(6, 0.3)
    task.periods = [period(p.labels, p.preds, loss=loss_over_uniform * math.log(3)) for p in task.periods]
    assert ("class-imbalance" in found(run_of(task))) is live
    assert found(run_of(task, final=True)) == {"class-imbalance": "warning"}


def test_a_contrastive_loss_whose_class_count_changes_is_no_internal_error():
    """CLIP-style InfoNCE: cross-entropy over (N, N) similarity logits, targets arange(N); the last batch
    is shorter, so the number of "classes" changes between calls (the counts used to be added as tensors
    of different lengths: an internal error on every later call)."""
    torch.manual_seed(0)
    img, txt = nn.Linear(16, 8), nn.Linear(12, 8)
    opt = torch.optim.Adam([*img.parameters(), *txt.parameters()], lr=1e-3)
    x, t = torch.randn(136, 16), torch.randn(136, 12)
    with nbdebug.watch(img, opt) as w:
        for _ in range(3):
            for i in range(0, 136, 64):  # batches of 64, 64, 8
                a = F.normalize(img(x[i : i + 64]), dim=1)
                b = F.normalize(txt(t[i : i + 64]), dim=1)
                logits = a @ b.T / 0.07
                target = torch.arange(len(a))
                opt.zero_grad()
                ((F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2).backward()
                opt.step()
    assert w.internal_errors == [] and "internal-error" not in {f.code for f in w.findings}


def test_a_multi_task_loss_counts_one_task_not_two_label_sets_mixed():
    """FairMOT-style joint training: a 2-way objectness cross-entropy and a 10-way identity cross-entropy
    each step. Counting both label sets into one histogram made class 0 (objectness 0 + identity 0) 6x
    the rarest identity: class-imbalance on a balanced task. The first task's calls are counted."""
    torch.manual_seed(0)
    x = torch.randn(640, 16)
    ident = torch.arange(640) % 10
    obj = (torch.arange(640) % 7 == 0).long()  # objectness: 1 in 7 positive
    body, det, cls = nn.Linear(16, 32), nn.Linear(32, 2), nn.Linear(32, 10)
    params = [*body.parameters(), *det.parameters(), *cls.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    model = nn.ModuleDict({"body": body, "det": det, "cls": cls})
    with nbdebug.watch(model, opt) as w:
        for _ in range(4):
            for i in range(0, 640, 64):
                h = torch.relu(body(x[i : i + 64]))
                opt.zero_grad()
                (
                    F.cross_entropy(cls(h), ident[i : i + 64]) + F.cross_entropy(det(h), obj[i : i + 64])
                ).backward()
                opt.step()
    task = w._run_data(final=True).task
    assert task.n_classes == 10 and task.target_counts == [64 * 4] * 10
    assert "class-imbalance" not in {f.code for f in w.findings if f.severity != "info"}
