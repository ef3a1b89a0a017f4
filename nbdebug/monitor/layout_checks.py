"""How the data is wired into the model: an RNN fed the wrong layout, batch norm trained on batches of one
or a few, dropout left on in evaluation, training data read in class order. Pure functions of the
`LayoutEvidence` (`monitor/layout.py`, `monitor/eval_probe.py`) a `RunData` carries; thresholds in the
catalogue."""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import median
from typing import Any

from .._core.findings import Finding
from .alignment import misaligned
from .rundata import RunData, _f

RNN_STEPS = 2  # training steps whose RNN calls all had the swapped layout (and none the right one)
BN_SMALL = 4  # catalogue batchnorm-small-batch: median train-mode batch at or below this (Wu & He 2018) ...
BN_BROKEN = 2  # ... is advice above this and a warning at or below it (34.7% error at 2 vs 23.6% at 32)
BN_FORWARDS = 3  # train-mode forwards a BN layer needs before its batch size is judged
ORDER_BATCHES = 8  # labelled training batches the label-order check needs
ORDER_MIN_SIZE = 4  # batches smaller than this are single-class by chance too often to count
ORDER_SHARE = 0.5  # catalogue unshuffled-data: share of single-class batches ...
ORDER_CHANCE = 0.05  # ... where shuffled batches would be single-class at most this often
DETACHED_PASSES = 2  # backward passes of a loss with a detached term (a structure: it repeats every step)


def _shown(names: list[str], k: int = 4) -> str:
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def check_rnn_layout(run: RunData) -> Iterator[Finding]:
    """rnn-batch-first-mismatch: on RNN_STEPS training steps (and on none the other way) a recurrent
    layer's time axis had exactly the size of the loss's batch while its batch axis had another (> 1)."""
    w = run.layout
    if w is None:
        return
    for c in w.rnn:
        if c.mismatched < RNN_STEPS or c.consistent:
            continue
        dims = "dim 1 as time and dim 0" if c.batch_first else "dim 0 as time and dim 1"
        t = c.shape[1] if c.batch_first else c.shape[0]
        n = c.shape[0] if c.batch_first else c.shape[1]
        if c.batch_first:
            fix = (
                f"the input is (seq, batch, feature): build {c.name} without batch_first=True, or feed it "
                "x.transpose(0, 1)"
            )
        else:
            fix = (
                f"the input is (batch, seq, feature): build {c.name} with batch_first=True "
                f"(nn.{c.type}(..., batch_first=True); its output is then (batch, seq, hidden), so take the last "
                "step as out[:, -1]), or feed it x.transpose(0, 1)"
            )
        yield _f(
            "rnn-batch-first-mismatch",
            "error",
            f"{c.name} ({c.type}, batch_first={c.batch_first}) got inputs of shape {c.shape} and reads {dims} "
            f"as the batch, but the loss's targets hold {c.loss_batch} examples per step, the size of its time "
            f"axis ({t}), not of its batch axis ({n}), on {c.mismatched} training step(s) from step "
            f"{c.first_step}: it steps through the batch, carrying its state from one example to the next",
            fix,
            c.name,
            steps=c.mismatched,
            shape=list(c.shape),
            loss_batch=c.loss_batch,
            batch_first=c.batch_first,
        )


def check_batchnorm_batch(run: RunData) -> Iterator[Finding]:
    """batchnorm-small-batch: a BatchNorm layer in train mode whose median training batch (over at least
    BN_FORWARDS forwards with gradients on) is BN_SMALL examples or fewer: a warning at BN_BROKEN or fewer
    (one example: an instance norm), advice at 3-4 (the transfer-learning tutorial trains at 4 and works)."""
    w = run.layout
    if w is None or not w.bn_batches:
        return
    small: dict[int, list[str]] = {}
    forwards: dict[int, int] = {}
    for name, sizes in w.bn_batches.items():
        n = sum(sizes.values())
        if n < BN_FORWARDS:
            continue
        typical = int(median(s for s, k in sizes.items() for _ in range(k)))
        if typical <= BN_SMALL:
            small.setdefault(typical, []).append(name)
            forwards[typical] = max(forwards.get(typical, 0), n)
    for size in sorted(small):
        names = small[size]
        why = (
            "with one example, each input is normalized by its own statistics (an instance norm)"
            if size == 1
            else f"statistics of {size} examples are noisy estimates of the data's"
        )
        yield _f(
            "batchnorm-small-batch",
            "warning" if size <= BN_BROKEN else "info",
            f"{len(names)} BatchNorm layer(s) ({_shown(names)}) trained on batches of {size} example(s) "
            f"(median over {forwards[size]} train-mode forwards): {why}, while model.eval() normalizes with "
            "the running averages of those statistics, so the network is evaluated on something it was not "
            "trained on",
            "train with batches of 16 or more (gradient accumulation does not enlarge BatchNorm's batch); with "
            "batches this small, freeze the BatchNorm layers (call .eval() on each BatchNorm module after "
            "model.train(), as detection and segmentation code does) or replace them with nn.GroupNorm",
            names[0],
            batch=size,
            layers=names,
        )


def frozen_batchnorm(run: RunData) -> int:
    """The median batch of the steps taken in eval mode when the model has no active dropout and that batch
    is BN_SMALL or fewer: BatchNorm frozen on purpose (PoolNet, detection code), not eval() left on; else 0."""
    w = run.layout
    sizes = [r.batch_size for r in run.steps if r.eval_mode and r.batch_size > 0]
    if w is None or w.dropout_modules or not w.bn_types or not sizes:
        return 0
    typical = int(median(sizes))
    return typical if typical <= BN_SMALL else 0


def check_eval_dropout(run: RunData) -> Iterator[Finding]:
    """dropout-active-in-eval: a dropout function ran with training=True during an eval-mode forward, or
    the same input gave different outputs in two eval-mode forwards with the weights unchanged."""
    w = run.layout
    if w is None:
        return
    if w.eval_dropout:
        c = w.eval_dropout[0]
        where = f"the forward of {c['module']}" if c["module"] else "the model's forward"
        calls = ", ".join(sorted({d["function"] for d in w.eval_dropout}))
        yield _f(
            "dropout-active-in-eval",
            "warning",
            f"{calls}(p={c['p']:g}) ran with training=True in {where} while the model was in eval mode "
            f"(eval forward {c['forwards']}): model.eval() does not reach a functional dropout, so "
            "evaluation drops units at random and its numbers change from run to run",
            "pass the module's mode: F.dropout(x, p, training=self.training), or use an nn.Dropout(p) "
            "attribute, which model.eval() turns off",
            c["module"] or "model",
            functions=sorted({d["function"] for d in w.eval_dropout}),
            p=c["p"],
        )
        return
    if w.eval_repeats:
        r = w.eval_repeats[0]
        yield _f(
            "dropout-active-in-eval",
            "warning",
            f"the same input (shape {tuple(r['shape'])}) passed twice through the model in eval mode, with "
            f"the weights unchanged, gave different outputs (relative difference {r['diff']:.2g}): evaluation is "
            "random, so something in forward (dropout, a random mask) is still on after model.eval()",
            "gate every random op in forward on self.training (if self.training: ...), not on a flag of your "
            "own, or use nn.Dropout modules, which model.eval() turns off (sampling in evaluation on purpose, "
            "a VAE's latent or Monte-Carlo dropout, is the exception)",
            "model",
            diff=r["diff"],
        )


def check_label_order(run: RunData) -> Iterator[Finding]:
    """unshuffled-data: of at least ORDER_BATCHES training batches of >= ORDER_MIN_SIZE class labels, at
    least ORDER_SHARE hold a single class, of at least two different classes, where batches drawn at
    random would be single-class with probability sum_c p_c^b <= ORDER_CHANCE (p_c: the run's class
    shares, b: the median batch)."""
    w = run.layout
    counts = run.task.target_counts if run.task is not None else None
    if w is None or not counts:
        return
    batches = [b for b in w.labels if b.size >= ORDER_MIN_SIZE]
    if len(batches) < ORDER_BATCHES:
        return
    pure = [b for b in batches if b.pure]
    classes = sorted({b.label for b in pure})
    share = len(pure) / len(batches)
    size = int(median(b.size for b in batches))
    total = sum(counts)
    chance = sum((c / total) ** size for c in counts if c)
    if share < ORDER_SHARE or len(classes) < 2 or chance > ORDER_CHANCE:
        return
    yield _f(
        "unshuffled-data",
        "warning",
        f"{len(pure)} of {len(batches)} training batches ({share:.0%}) hold a single class (classes "
        f"{_shown([str(c) for c in classes], 6)} in turn, from step {pure[0].step}), where batches of {size} "
        f"drawn at random from these labels would be single-class {chance:.1%} of the time: the data is read "
        "in class order, so each run of steps pulls the model toward one class and it ends up favouring the "
        "last one it saw",
        "shuffle the training data: DataLoader(dataset, batch_size=..., shuffle=True), or index with "
        "torch.randperm each epoch",
        "data",
        share=share,
        chance=chance,
        batch=size,
        classes=classes,
    )


def detached_term(rows: list[dict[str, Any]], marked: int) -> Finding | None:
    """loss-term-detached: on DETACHED_PASSES backward passes or more, the loss was a sum with a non-zero
    scalar term built only from .detach()ed tensors (`monitor/detached.py`); `rows` as `DetachProbe.read`."""
    rows = [r for r in rows if math.isfinite(r["term"]) and r["term"] != 0.0]
    if marked < DETACHED_PASSES or not rows:
        return None
    r = rows[0]
    return _f(
        "loss-term-detached",
        "error",
        f"from step {r['step']}, the loss passed to backward() ({r['loss']:.3g}) adds a term of {r['term']:.3g} "
        f"computed only from .detach()ed tensors ({marked} backward passes): the term counts in the loss's "
        "value but gives no gradient, so the parameters it was meant to train never learn from it",
        "move the .detach() off that term: detach only what must stay fixed (the real side, "
        "(fake - real.detach()).abs(); the fake images in the discriminator's own step, D(fake.detach())); "
        "a generator's adversarial term must keep the discriminator's graph: loss_g = criterion(D(fake), real)",
        "loss",
        term=r["term"],
        loss=r["loss"],
        passes=marked,
    )


def check_detached_term(run: RunData) -> Iterator[Finding]:
    w = run.layout
    if w is not None:
        f = detached_term(w.detached, w.detached_marked)
        if f is not None:
            yield f


def check_alignment(run: RunData) -> Iterator[Finding]:
    """labels-misaligned: the inputs do not predict the labels and the loss stays at the frequency-only
    level (`monitor/alignment.py`)."""
    w = run.layout
    e = misaligned(w.alignment if w is not None else None, [r.loss for r in run.steps])
    if e is None:
        return
    yield _f(
        "labels-misaligned",
        "warning",
        f"the training labels look independent of their inputs: among the first {e['rows']} training examples, "
        f"an example's nearest neighbour has its label {e['agree']:.0%} of the time, chance level "
        f"({e['chance']:.0%} from the shares of {e['classes']} classes), and after {len(run.steps)} steps the loss "
        f"({e['loss']:.3g}) is still that of a model that knows only the class shares ({e['baseline']:.3g})",
        "check that inputs and labels are shuffled and split together (one permutation indexes both: "
        "idx = torch.randperm(n); x, y = x[idx], y[idx]) and that labels are read after any reordering of "
        "the table",
        "data",
        agree=e["agree"],
        chance=e["chance"],
        loss=e["loss"],
        baseline=e["baseline"],
    )


LAYOUT_CHECKS = (
    check_rnn_layout,
    check_batchnorm_batch,
    check_eval_dropout,
    check_label_order,
    check_detached_term,
    check_alignment,
)
