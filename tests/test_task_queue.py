"""The loss-call queue of `monitor/task.py` (issue 17's overhead work): a training loss call only queues its
targets, argmax predictions and per-example losses; `flush` counts them in one vectorized pass. What it counts
must be what counting each call on its own gives, for the cases the fast paths skip: batches of unequal size (a
short last batch), targets equal to `ignore_index` (a row with none left is NaN and left out), calls of several
blocks and epochs in one queue, and the scatter path used on an accelerator."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nbdebug.monitor.task import SPREAD_EVERY, ClassCounts, TaskCounter, slot_counts


def _calls(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, targets) of 7 loss calls over 5 classes: batches of 8 but a last one of 3, the first target
    of each ignored (-100)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in (8, 8, 8, 8, 8, 8, 3):
        x, t = torch.randn(n, 5, generator=g), torch.randint(0, 5, (n,), generator=g)
        t[0] = -100
        out.append((x, t))
    return out


def _by_hand(calls: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list[int], list[int], list[int], float]:
    labels, preds, hits = [0] * 5, [0] * 5, [0] * 5
    value = 0.0
    for x, t in calls:
        p = x.argmax(1)
        for a, b in zip(t.tolist(), p.tolist()):
            if 0 <= a < 5:
                labels[a] += 1
                preds[b] += 1
                hits[a] += a == b
        value += float(F.cross_entropy(x, t))
    return labels, preds, hits, value


@pytest.mark.parametrize("flush_every", [1, 3, 100])
def test_queued_counts_are_what_counting_each_call_gives(flush_every):
    task, period = TaskCounter(block=4), ClassCounts()
    calls = _calls()
    for step, (x, t) in enumerate(calls, start=1):
        task.on_loss("cross_entropy", x, t, F.cross_entropy(x, t), {}, period, step, True, int(x.shape[0]))
        if step % flush_every == 0:
            task.flush()
    task.flush()
    labels, preds, hits, value = _by_hand(calls)
    got = period.read()
    assert (got.labels, got.preds, got.hits) == (labels, preds, hits)
    assert got.value == pytest.approx(value / len(calls), rel=1e-6)
    assert task.target_counts.tolist() == labels
    # the blocks of 4 steps hold their own calls: steps 1-4 and 5-7
    first = task.blocks[0].read()
    assert first.labels == _by_hand(calls[:4])[0] and task.blocks[1].read().labels == _by_hand(calls[4:])[0]


def test_two_epochs_in_one_queue_go_to_their_own_period():
    task, one, two = TaskCounter(block=50), ClassCounts(), ClassCounts()
    calls = _calls(1)
    for step, (x, t) in enumerate(calls, start=1):
        task.on_loss(
            "cross_entropy", x, t, F.cross_entropy(x, t), {}, one if step <= 3 else two, step, True, 8
        )
    task.flush()
    assert one.read().labels == _by_hand(calls[:3])[0] and two.read().labels == _by_hand(calls[3:])[0]


def test_the_spread_is_the_pooled_one_of_each_calls_per_example_losses():
    """Per call: the mean of its rows' losses (ignored targets left out, a row with none left dropped) and the
    squared deviations from it; pooled over the calls. Unequal batches, a sequence call with positions."""
    g = torch.Generator().manual_seed(2)
    task, period = TaskCounter(block=50), ClassCounts()
    calls = []
    for n in (6, 6, 2):
        x, t = torch.randn(n, 4, 3, generator=g), torch.randint(0, 4, (n, 3), generator=g)
        t[0] = -100  # every position of row 0 ignored: NaN, left out
        t[1, 0] = -100
        calls.append((x, t))
    for step, (x, t) in enumerate(calls, start=1):
        task.on_loss("cross_entropy", x, t, F.cross_entropy(x, t), {}, period, step, True, int(x.shape[0]))
    spread = task.spread(1, 3)
    rows = []
    for x, t in calls:
        v = F.cross_entropy(x, t, reduction="none")
        keep = (t != -100).float()
        r = (v * keep).sum(1) / keep.sum(1)
        rows.append(r[~torch.isnan(r)])
    n = sum(len(r) for r in rows)
    dev = sum(float(((r - r.mean()) ** 2).sum()) for r in rows)
    assert spread.mean == pytest.approx(sum(float(r.sum()) for r in rows) / n, rel=1e-5)
    assert spread.std == pytest.approx(math.sqrt(dev / sum(len(r) - 1 for r in rows)), rel=1e-5)
    assert spread.steps == 3


def test_unsampled_steps_take_per_example_losses_every_few_steps():
    task, period = TaskCounter(block=50), ClassCounts()
    x, t = torch.randn(8, 5), torch.randint(0, 5, (8,))
    for step in range(1, 13):
        task.on_loss("cross_entropy", x, t, F.cross_entropy(x, t), {}, period, step, False, 8)
    task.flush()
    assert [c[0] for c in task._calls] == [s for s in range(1, 13) if s % SPREAD_EVERY == 0]


def test_the_scatter_count_used_on_an_accelerator_equals_bincount():
    index = torch.tensor([0, 3, 3, 7, 2, 0, 0])
    assert slot_counts(index, 9, scatter=True).tolist() == slot_counts(index, 9, scatter=False).tolist()
    assert slot_counts(index, 9).tolist() == [3, 0, 1, 2, 0, 0, 0, 1, 0]


@pytest.mark.parametrize("task", ["classes", "ignore_index", "sequence", "binary", "two_heads"])
def test_training_accuracy_per_epoch_is_the_loops_own(task):
    """A counted loss call's correct predictions come from the class counts' hits (no torch call at the loss
    call); an uncounted one (a second head, a two-column binary target) is counted at the call as before. Either
    way `Watch.epochs.train_acc` is the accuracy the loop's own outputs give, epoch by epoch."""
    import nbdebug

    torch.manual_seed(0)
    c = 4
    model = torch.nn.Linear(6, c + 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 40, 6, generator=g)  # 2 epochs of 5 batches of 40
    y = torch.randint(0, c, (2, 5, 40), generator=g)
    hits, seen = [0, 0], [0, 0]
    with nbdebug.watch(model, opt, every=3) as w:
        for e in range(2):
            for b in range(5):
                out = model(x[e, b])
                t = y[e, b].clone()
                if task in ("classes", "ignore_index", "two_heads"):
                    if task == "ignore_index":
                        t[:5] = -100
                    logits = out[:, :c]
                    loss = F.cross_entropy(logits, t)
                    hits[e] += int((logits.argmax(1) == t).sum())
                    seen[e] += t.numel()
                    if task == "two_heads":  # a second, 3-way head: not the counted stream
                        t2 = t.clamp(0, 2) % 3
                        loss = loss + F.cross_entropy(out[:, c:], t2)
                        hits[e] += int((out[:, c:].argmax(1) == t2).sum())
                        seen[e] += t2.numel()
                elif task == "sequence":  # (N, C, T) scores for (N, T) targets
                    logits = out[:, :c].reshape(8, 5, c).transpose(1, 2)
                    tt = t.reshape(8, 5)
                    loss = F.cross_entropy(logits, tt)
                    hits[e] += int((logits.argmax(1) == tt).sum())
                    seen[e] += tt.numel()
                else:  # a single logit
                    z = out[:, :1]
                    tb = (t[:, None] >= 2).float()
                    loss = F.binary_cross_entropy_with_logits(z, tb)
                    hits[e] += int(((z > 0) == (tb > 0.5)).sum())
                    seen[e] += tb.numel()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if e == 1 and b == 2:  # step 8, not sampled: read live, with calls still queued
                    live = w.epochs["train_acc"].tolist()
                    assert live == pytest.approx([h / s for h, s in zip(hits, seen)], abs=1e-12)
            w.epoch()
    assert w.internal_errors == []
    got = w.epochs["train_acc"].tolist()
    assert got == pytest.approx([h / s for h, s in zip(hits, seen)], abs=1e-12)
