"""What the training task is, read from the loss calls: the labels and the predictions per class, whether the
targets are a language model's (sequence targets, many classes with Zipf-like frequencies), which fix for
imbalanced labels is already in place, and how much of the loss's step-to-step wiggle minibatch sampling
explains. The label and loss checks (`loss_checks.py`) judge imbalance, collapse and oscillation by it.

Counting stays on the device (no sync per step) and costs a step almost nothing: a training loss call
keeps its targets, its argmax predictions and its per-example losses (one extra loss evaluation with
`reduction='none'`, no backward, on sampled steps and, for loss inputs up to `SPREAD_NUMEL` elements, every
SPREAD_EVERY-th step) in a queue; the queue is counted in one vectorized pass (`flush`) at each sampled step,
when a diagnosis reads it, or when it holds FLUSH_CALLS calls or FLUSH_NUMEL values: per-class label, prediction and hit counts summed
into tensors per epoch and per block of steps, and per call the two sums of its per-example losses in a
fixed ring buffer. About 40 small torch calls per loss call became 5 (bench/bench_integrations.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import torch
import torch.nn.functional as F

from .._core import intercept
from .._core.tensors import on_device, stack_floats
from .losscalls import BINARY, CLASSIFICATION, CUSTOM

WEIGHT_KEYS = ("weight", "pos_weight")  # loss arguments that weight the classes
FOCAL_WORDS = ("focal", "balanced", "weighted")  # loss modules whose name says they rebalance
CLASS_ATTRS = ("weight", "pos_weight", "alpha")  # loss-module attributes that hold class weights
KEEP_CALLS = 1024  # loss calls whose per-example loss spread is kept (the checks read the last period)
SPREAD_NUMEL = (
    1 << 20
)  # loss inputs up to this size get their per-example losses on every SPREAD_EVERY-th step
SPREAD_EVERY = 3  # (and on sampled steps): a spread pooled over a third of a period's batches is as good
FLUSH_CALLS = 32  # queued loss calls counted together at most (a diagnosis counts them sooner)
FLUSH_NUMEL = 1 << 20  # queued target / per-example values that make the queue be counted at once


@dataclass
class _Call:
    """One training loss call, still tensors (`TaskCounter.flush` counts them)."""

    step: int
    period: Any  # ClassCounts: the epoch's counts it goes into (and its step's block)
    output: torch.Tensor | None  # the loss value, detached, when it is a scalar
    classify: bool  # a mean-reduced classification loss (its value is a mean cross-entropy)
    plain: bool  # ... with no class weights or smoothing
    counted: tuple[torch.Tensor, torch.Tensor, int] | None = None  # (labels, predictions, classes), flat
    spread: tuple[str, torch.Tensor, Any, int | None] | None = None  # (loss, values, targets, ignore_index)
    slot: int = -1  # its row in the per-example ring buffer


@dataclass
class ClassCounts:
    """Labels, argmax predictions and correct predictions per class over one period (one (3, C) tensor until
    read), and three loss sums (one tensor): the mean unweighted cross-entropy of the period (for the
    language-model collapse test), any mean-reduced cross-entropy, the loss calls' own values."""

    counts: Any = None  # (3, C) long: labels, predictions, hits per class
    sums: Any = None  # (3,) float: loss_sum (plain CE x labels), ce_sum, value_sum
    loss_n: int = 0
    ce_n: int = 0  # any mean-reduced cross-entropy (weighted or smoothed too): ln C at uniform outputs
    value_n: int = 0  # the loss calls' own values (any loss), to see whether the loss still falls
    _read: Any = field(default=None, repr=False, compare=False)  # what read() gave, until the next add()

    @property
    def preds(self) -> Any:
        return None if self.counts is None else self.counts[1]

    def add(self, counts: torch.Tensor, sums: torch.Tensor, ns: tuple[int, int, int]) -> None:
        """Add some calls' (3, C) counts, their three loss sums and how many calls each sum holds. The
        number of classes can change between calls (a contrastive loss's (N, N) logits over a shorter last
        batch): counts are padded to the longer."""
        self._read = None
        self.counts = counts if self.counts is None else _padded_sum(self.counts, counts)
        self.sums = sums if self.sums is None else self.sums + sums.to(self.sums.device)
        self.loss_n, self.ce_n, self.value_n = self.loss_n + ns[0], self.ce_n + ns[1], self.value_n + ns[2]

    def read(self) -> PeriodClasses | None:
        if self.counts is None:
            return None
        if self._read is None:  # a complete period is read at every diagnosis: once is enough
            self._read = self._read_now()
        return self._read

    def _read_now(self) -> PeriodClasses:
        # one read of the device for the whole period (three count vectors and three sums)
        c = int(self.counts.shape[1])
        sums = self.sums.to(torch.float64) if self.sums is not None else torch.zeros(3, dtype=torch.float64)
        flat = torch.cat([self.counts.reshape(-1).to(torch.float64), sums.to(self.counts.device)]).tolist()
        labels, preds, hits = ([int(v) for v in flat[i * c : (i + 1) * c]] for i in range(3))
        loss_sum, ce_sum, value_sum = flat[3 * c :]
        loss = loss_sum / self.loss_n if self.loss_n else math.nan
        ce = ce_sum / self.ce_n if self.ce_n else math.nan
        value = value_sum / self.value_n if self.value_n else math.nan
        return PeriodClasses(labels, preds, hits, loss, ce, value)


@dataclass
class PeriodClasses:
    """`ClassCounts` of one complete period, read back as numbers."""

    labels: list[int]
    preds: list[int]
    hits: list[int]
    loss: float = math.nan  # mean cross-entropy (nats) of the period's unweighted mean-reduced calls
    ce: float = math.nan  # mean of its mean-reduced cross-entropy calls, weighted or not (ln C if uniform)
    value: float = math.nan  # mean value of its loss calls (any loss): is the loss still falling?


@dataclass
class Spread:
    """Per-example losses over some steps: their mean, their standard deviation within a batch (pooled
    over the loss calls), the median number of independent examples in a step's loss, and the number of
    steps they come from."""

    mean: float
    std: float
    rows: int
    steps: int


@dataclass
class TaskEvidence:
    """What the checks read about the task (a `RunData` field)."""

    n_classes: int | None = None
    target_counts: list[int] | None = None  # training labels over the whole run
    periods: list[PeriodClasses] = field(default_factory=list)  # the last complete periods, oldest first
    period_kind: str = "epoch"  # what a period is: "epoch" or "block" (of steps)
    sequence: bool = False  # class targets with a time dimension: (N, T) for (N, C, T) scores
    binary: bool = False  # a single-logit binary loss (BCE): classes are [negative, positive]
    fixes: list[str] = field(default_factory=list)  # class weights, focal loss, weighted sampler in place
    spread: Spread | None = None  # per-example losses over the last loss-curve period
    complete: int = 0  # complete periods in the run (`periods` keeps the last two)


class EpochAcc:
    """Running sums for one epoch of a watched run (`Watch._epochs`): accuracy and validation sums, and
    the epoch's class counts; tensors are summed without a device sync until read."""

    def __init__(self, start: int) -> None:
        self.start = start  # steps completed when the epoch began
        self.train_correct: Any = 0
        self.train_seen = 0
        self.val_loss: Any = 0.0
        self.val_seen = 0
        self.val_correct: Any = 0
        self.val_acc_seen = 0
        self.counts = ClassCounts()  # labels, predictions and hits per class (training calls)
        self.counted_seen = 0  # training examples whose correctness is in `counts` (its hits), not above

    def add_counted(self, n: int) -> None:
        """`n` training examples whose hits go into `counts` (the class counts' queued pass counts them)."""
        self.train_seen += n
        self.counted_seen += n

    def train_accuracy(self) -> float:
        """Training accuracy over the epoch: the hits of the counted calls (read with the epoch's class counts,
        once the loss-call queue is flushed) plus those taken per call."""
        if not self.train_seen:
            return math.nan
        correct = float(self.train_correct)
        if self.counted_seen:
            got = self.counts.read()
            correct += sum(got.hits) if got is not None else 0
        return correct / self.train_seen


class TaskCounter:
    """Fed by `Watch.on_loss` with every loss call; keeps the class counts per epoch (via the epoch's
    `counts`) and per block of `block` steps, the fixes seen, and the per-example loss spread."""

    def __init__(self, block: int, loss_module: Any = None) -> None:
        self.block = block
        self.n_classes: int | None = None
        self.stream: tuple[str, int] | None = None  # (loss, classes) of the calls counted: one task
        self.target_counts: torch.Tensor | None = None
        self.blocks: dict[int, ClassCounts] = {}
        self.sequence = False
        self.binary = False
        self.fixes: dict[str, None] = {}
        self._sums: torch.Tensor | None = None  # (KEEP_CALLS, 3): per call, sum, squared deviations, rows
        self._calls: deque[tuple[int, int, int]] = deque(maxlen=KEEP_CALLS)  # step, examples, slot
        self._written = 0
        self._queue: list[_Call] = []
        self.last_pred: torch.Tensor | None = None  # the argmax predictions of the last loss call, if taken
        self.last_counted = False  # the last loss call's labels and predictions went into the class counts
        self._queued = 0  # values held by the queue
        if loss_module is not None:
            self._loss_module_fix(loss_module)

    def _loss_module_fix(self, module: Any) -> None:
        name = type(module).__name__
        weighted = [
            a for a in CLASS_ATTRS if isinstance(getattr(module, a, None), (torch.Tensor, float, list))
        ]
        if any(w in name.lower() for w in FOCAL_WORDS) or weighted:
            self.fixes[f"{name}({', '.join(f'{a}=...' for a in weighted)})"] = None

    def on_loss(self, name: str, x: torch.Tensor, t: torch.Tensor | None, output: torch.Tensor,
                kwargs: dict, counts: ClassCounts, step: int, sampled: bool, batch: int) -> None:  # fmt: skip
        """Queue one training loss call made during step `step` for the epoch's `counts` and the block's."""
        self.last_pred, self.last_counted = None, False
        if t is None:
            return
        self._fixes_of(name, kwargs)
        call = _Call(
            step,
            counts,
            output.detach() if output.numel() == 1 else None,
            name in CLASSIFICATION and kwargs.get("reduction", "mean") == "mean",
            name in CLASSIFICATION and _plain(kwargs),
        )
        # reduction='none': the caller weights or masks the values itself, so they are not what it averages
        if (
            name != CUSTOM
            and kwargs.get("reduction", "mean") != "none"
            and (sampled or (x.numel() <= SPREAD_NUMEL and step % SPREAD_EVERY == 0))
        ):
            values = intercept.per_element(name, x, t, kwargs)
            if values is not None and values.numel() > 0:
                call.spread = (name, values, t, intercept.ignored(name, t, kwargs))
                call.slot = self._written % KEEP_CALLS
                self._written += 1
                # independent examples: the rows, unless they are positions within the model's batch (a
                # flattened (batch, time) loss input), then the batch
                rows = int(values.shape[0])
                self._calls.append((step, min(rows, batch) if batch > 0 else rows, call.slot))
                self._queued += values.numel()
        classes = self._classes(name, x, t)
        if classes is not None:
            labels, preds, c, sequence, binary = classes
            # one task: the first classification call fixes the loss and class count that are counted; a
            # multi-task loss (FairMOT: 2-way objectness and 10-way identity) would mix two label sets into
            # one skewed count (a contrastive loss's shorter last batch is left out the same way)
            if self.stream is None:
                self.stream = (name, c)
            if self.stream == (name, c):
                self.n_classes, self.sequence, self.binary = (
                    c,
                    self.sequence or sequence,
                    self.binary or binary,
                )
                call.counted = (labels, preds, c)
                self.last_counted = True
                self._queued += 2 * labels.numel()
        if call.counted is None and call.spread is None:
            return
        self._queue.append(call)
        if len(self._queue) >= FLUSH_CALLS or self._queued >= FLUSH_NUMEL:
            self.flush()

    def flush(self) -> None:
        """Count the queued loss calls: their class counts into their epoch's and block's `ClassCounts`,
        their per-example loss sums into the ring buffer; a few vectorized torch calls for the whole queue,
        no device sync."""
        queue, self._queue, self._queued = self._queue, [], 0
        if queue:
            self._count_queue([c for c in queue if c.counted is not None])
            self._spread_queue([c for c in queue if c.spread is not None])

    def _count_queue(self, calls: list[_Call]) -> None:
        """The class counts and loss sums of the queued calls, per partition of calls that go into the same
        epoch and block (one partition between two diagnoses, as a rule): a dozen torch calls each."""
        if not calls:
            return
        parts: dict[tuple[int, int], list[_Call]] = {}
        for k in calls:
            parts.setdefault((id(k.period), (k.step - 1) // self.block), []).append(k)
        for (_, block), part in parts.items():
            counts, sums, ns = _count(part)
            self.target_counts = (
                counts[0] if self.target_counts is None else _padded_sum(self.target_counts, counts[0])
            )
            part[0].period.add(counts, sums, ns)
            self.blocks.setdefault(block, ClassCounts()).add(counts, sums, ns)
        last = max(block for _, block in parts)
        for key in [key for key in self.blocks if key < last - 2]:
            del self.blocks[key]

    def _classes(self, name: str, x: torch.Tensor, t: torch.Tensor) -> tuple[Any, ...] | None:
        """(labels, predictions, C, sequence targets, binary), flat, for a class-index or single-logit
        binary loss."""
        if (name in CLASSIFICATION or name == CUSTOM) and x.dim() >= 2 and not t.is_floating_point():
            pred = self.last_pred = x.argmax(1)  # the caller's accuracy reuses it
            if pred.shape != t.shape:
                return None
            c = int(x.shape[1])
            sequence = t.dim() == 2 and x.dim() == 3
            if t.dim() != 1:  # (a reshape is a dispatch even when it changes nothing)
                t, pred = t.reshape(-1), pred.reshape(-1)
            return t, pred, c, sequence, False
        if name in BINARY and x.shape == t.shape and (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)):
            threshold = 0.0 if name.endswith("logits") else 0.5
            labels = (t.reshape(-1) > 0.5).long()
            preds = (x.reshape(-1) > threshold).long()
            return labels, preds, 2, False, True
        return None

    def _fixes_of(self, name: str, kwargs: dict) -> None:
        if name == CUSTOM:
            return
        fn = {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss", "binary_cross_entropy": "BCELoss",
              "binary_cross_entropy_with_logits": "BCEWithLogitsLoss"}.get(name)  # fmt: skip
        if fn is None:
            return
        for key in WEIGHT_KEYS:
            if kwargs.get(key) is not None:
                self.fixes[f"{fn}({key}=...)"] = None
        if kwargs.get("reduction") == "none":  # the caller weights each example itself (focal loss, masks)
            self.fixes[f"{fn}(reduction='none') weighted per example"] = None

    def _spread_queue(self, calls: list[_Call]) -> None:
        """Per call, its per-example losses as (sum, squared deviations from their mean, rows) in the ring
        buffer: how much they spread within a batch says how much the step's loss wiggles from one freshly
        sampled batch to the next (std / sqrt(batch)). Calls of one loss, positions and ignore_index are
        averaged per row together; then every call's sums in one segmented pass."""
        if not calls:
            return
        groups: dict[tuple[str, int, int | None], list[int]] = {}
        for i, k in enumerate(calls):
            name, values, _, skip = k.spread
            groups.setdefault((name, int(values.shape[1]), skip), []).append(i)
        device = calls[0].spread[1].device
        rows, owner = [], []
        for (name, _, skip), idx in groups.items():
            values = torch.cat([on_device(calls[i].spread[1], device) for i in idx])
            target = (
                torch.cat([on_device(calls[i].spread[2].reshape(-1), device) for i in idx])
                if skip is not None
                else None
            )
            kw = {"ignore_index": skip} if skip is not None else {}
            rows.append(intercept.row_means(name, values, target, kw))
            owner.extend((i, int(calls[i].spread[1].shape[0])) for i in idx)
        r = torch.cat(rows) if len(rows) > 1 else rows[0]
        counted = ~torch.isnan(r)  # rows whose targets were all ignored are NaN
        m = len(calls)
        sizes = {n for _, n in owner}
        if len(sizes) == 1 and [i for i, _ in owner] == list(range(m)):  # equal batches, in order: a reshape
            size = sizes.pop()
            r2, c2 = r.reshape(m, size), counted.reshape(m, size)
            n = c2.sum(1).float()
            s1 = torch.where(c2, r2, 0.0).sum(1)
            dev = torch.where(c2, r2 - (s1 / n.clamp_min(1))[:, None], 0.0)
            s2 = (dev * dev).sum(1)
        else:
            seg = torch.repeat_interleave(
                torch.tensor([i for i, _ in owner], device=device),
                torch.tensor([n for _, n in owner], device=device),
            )
            zeros = torch.zeros(m, device=device)
            n = zeros.index_add(0, seg, counted.float())
            s1 = zeros.index_add(0, seg, torch.where(counted, r, 0.0))
            dev = torch.where(counted, r - (s1 / n.clamp_min(1))[seg], 0.0)
            s2 = zeros.index_add(0, seg, dev * dev)
        if self._sums is None or self._sums.device != device:  # first, or the model moved: start again
            self._sums = torch.zeros(KEEP_CALLS, 3, device=device)
            fresh = {k.slot for k in calls}
            self._calls = deque((c for c in self._calls if c[2] in fresh), maxlen=KEEP_CALLS)
        slots = torch.tensor([k.slot for k in calls], device=device)
        self._sums.index_copy_(0, slots, torch.stack([s1, s2, n], 1))

    def spread(self, first: int, last: int) -> Spread | None:
        """The per-example loss spread over steps `first`..`last` (those with per-example losses)."""
        self.flush()
        calls = [c for c in self._calls if first <= c[0] <= last]
        if not calls or self._sums is None:
            return None
        sums = self._sums.tolist()
        n = sum(sums[k][2] for _, _, k in calls)
        dof = sum(max(sums[k][2] - 1, 0) for _, _, k in calls)
        if n <= 0:
            return None
        per_step: dict[int, int] = {}
        for step, units, _ in calls:
            per_step[step] = per_step.get(step, 0) + units
        return Spread(
            mean=sum(sums[k][0] for _, _, k in calls) / n,
            std=math.sqrt(sum(sums[k][1] for _, _, k in calls) / dof) if dof > 0 else math.nan,
            rows=int(median(per_step.values())),
            steps=len(per_step),
        )

    def loader_fix(self, loader: Any) -> None:
        """A training DataLoader that samples by weights rebalances the classes it draws."""
        from torch.utils.data import WeightedRandomSampler

        sampler = getattr(loader, "sampler", None)
        inner = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
        if isinstance(sampler, WeightedRandomSampler) or isinstance(inner, WeightedRandomSampler):
            self.fixes["WeightedRandomSampler"] = None

    def evidence(self, periods: list[ClassCounts], kind: str, steps: tuple[int, int] | None) -> TaskEvidence:
        """The numbers the checks read; `periods`: the class counts of the complete `kind`s, oldest
        first; `steps`: the (first, last) step of the loss curve's last period. The queue must have been
        counted (`flush`) before `periods` were taken."""
        self.flush()
        read = [p.read() for p in periods[-2:]]
        return TaskEvidence(
            n_classes=self.n_classes,
            target_counts=self.target_counts.tolist() if self.target_counts is not None else None,
            periods=[p for p in read if p is not None],
            period_kind=kind,
            sequence=self.sequence,
            binary=self.binary,
            fixes=list(self.fixes),
            spread=self.spread(*steps) if steps else None,
            complete=len(periods),
        )


def _count(calls: list[_Call]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, int]]:
    """(3, C) label / prediction / hit counts of `calls` (one class count C), their three loss sums (plain
    cross-entropy x labels, mean-reduced cross-entropy, value) and how many calls each sum holds; no sync."""
    c = calls[0].counted[2]
    labels = torch.cat([k.counted[0] for k in calls])
    preds = torch.cat([on_device(k.counted[1], labels.device) for k in calls])
    width = c + 1  # the last slot takes the labels out of range (ignore_index), then is dropped
    valid = (labels >= 0) & (labels < c)
    index = torch.cat(
        [
            torch.where(valid, labels, c),
            torch.where(valid, preds, c) + width,
            torch.where(valid & (preds == labels), labels, c) + 2 * width,
        ]
    )
    counts = slot_counts(index, 3 * width).reshape(3, width)[:, :c]
    # the loss values: a scalar call adds to value_sum; a mean-reduced classification loss to ce_sum; a
    # plain one (no weights, no smoothing) to loss_sum, weighted by its number of labels
    have = [k for k in calls if k.output is not None]
    weights = [(k.counted[0].numel() if k.plain else 0, int(k.classify), 1) for k in have]
    if not have:
        return counts, torch.zeros(3, device=index.device), (0, 0, 0)
    w = torch.tensor(weights, dtype=torch.float32, device=index.device)
    sums = (w * stack_floats([k.output for k in have], index.device)[:, None]).sum(0)
    return counts, sums, tuple(sum(x[j] for x in weights) for j in range(3))  # type: ignore[return-value]


def slot_counts(index: torch.Tensor, size: int, scatter: bool | None = None) -> torch.Tensor:
    """How many of `index` (values in [0, size)) fall in each slot: `torch.bincount` on the CPU, a scatter add
    on an accelerator (bincount reads the largest index to size its output: a device sync there)."""
    if scatter is None:
        scatter = index.device.type != "cpu"
    if not scatter:
        return torch.bincount(index, minlength=size)
    return torch.zeros(size, dtype=torch.long, device=index.device).index_add_(
        0, index, torch.ones_like(index)
    )


def _plain(kwargs: dict) -> bool:
    """A mean-reduced loss without class weights or smoothing: its value is the mean cross-entropy."""
    return (
        kwargs.get("reduction", "mean") == "mean"
        and kwargs.get("weight") is None
        and not kwargs.get("label_smoothing")
    )


def _padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b, the shorter padded with zeros along the last (class) dimension."""
    if a.shape == b.shape:
        return a + b
    n = max(a.shape[-1], b.shape[-1])
    return F.pad(a, (0, n - a.shape[-1])) + F.pad(b, (0, n - b.shape[-1]))
