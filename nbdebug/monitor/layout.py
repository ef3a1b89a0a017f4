"""How the data meets the model: what the recurrent layers, the batch-norm layers and the training labels of
a watched run show about its wiring. The evidence for `layout_checks.py`.

- RNN layout: each `nn.RNN`/`nn.LSTM`/`nn.GRU` call of a training step is compared with the batch the step's
  loss uses (the target's first dimension). A layer built with `batch_first=False` and fed
  `(batch, seq, feature)` has its *time* axis equal to that batch and its batch axis equal to something else
  (the sequence length): it steps through the examples and mixes them.
- Batch norm: the batch size each `BatchNorm*` layer normalizes over in train mode (its statistics come
  from that batch; with one example, from one image).
- Label order: per training batch of class labels, whether every label is the same class. A shuffled batch
  of b examples is all one class with probability sum_c p_c^b (p_c: class shares); a class-sorted dataset
  read in order gives such batches most of the time.

Costs: shape reads in the layer hooks (no device sync); per training loss call, one reduction of the labels
(`torch.aminmax`), kept on the device and read back when a diagnosis runs (the first KEEP_BATCHES batches).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._core.hooks import HookSet
from .._core.tensors import detached, first_tensor
from .alignment import MIN_STEPS, ROWS, AlignmentRows
from .detached import DetachProbe
from .eval_probe import EvalProbe
from .records import safe
from .wrapped import compiled

KEEP_BATCHES = 256  # training batches whose labels are read for the label-order check


@dataclass
class RnnCalls:
    """One recurrent layer's training calls against the loss's batch: `mismatched` steps had its time axis
    equal to the loss's batch and its batch axis not (both > 1); `consistent` steps had its batch axis equal
    to the loss's batch."""

    name: str
    type: str
    batch_first: bool
    mismatched: int = 0
    consistent: int = 0
    first_step: int = 0
    shape: tuple[int, ...] = ()  # the input shape of the first mismatched call
    loss_batch: int = 0


@dataclass
class LabelBatch:
    """One training batch's class labels: its size, whether all are one class, and that class."""

    step: int
    size: int
    pure: bool
    label: int


@dataclass
class LayoutEvidence:
    """What `layout_checks.py` reads (a `RunData` field)."""

    rnn: list[RnnCalls] = field(default_factory=list)
    bn_batches: dict[str, Counter] = field(default_factory=dict)  # BN layer -> {batch size: train forwards}
    bn_types: dict[str, str] = field(default_factory=dict)
    labels: list[LabelBatch] = field(default_factory=list)
    eval_dropout: list[dict[str, Any]] = field(default_factory=list)  # see EvalProbe
    eval_repeats: list[dict[str, Any]] = field(default_factory=list)
    dropout_modules: int = 0  # nn.Dropout-family modules with p > 0 (eval() changes what they do)
    detached: list[dict[str, Any]] = field(default_factory=list)  # DetachProbe.read()
    detached_marked: int = 0
    alignment: dict[str, Any] | None = None  # AlignmentRows.evidence(): nearest-neighbour label agreement


class LayoutProbe:
    """Hooks the recurrent and batch-norm layers of `monitor.model` and reads the training loss calls."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        model = monitor.model
        self._rnn = {m: RnnCalls(n, type(m).__name__, bool(m.batch_first))
                     for n, m in model.named_modules() if isinstance(m, nn.RNNBase)}  # fmt: skip
        self._bn = {m: n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        self.bn_batches: dict[str, Counter] = {n: Counter() for n in self._bn.values()}
        self._pending: list[tuple[RnnCalls, int, int, tuple[int, ...]]] = []  # this step's RNN calls
        self._step_seen: dict[str, int] = {}  # RNN layer -> last step judged (one verdict per step)
        self._labels: list[tuple[int, int, Any]] = []  # (step, size, (min, max)) on the device
        self._read: list[LabelBatch] = []
        self.eval = EvalProbe(monitor)
        self.rows = AlignmentRows()
        self._aligned: dict[str, Any] | None = None
        self.detached = DetachProbe([monitor.root], monitor.internal_errors, lambda: monitor.count + 1)

    def attach(self, hooks: HookSet) -> None:
        if compiled(self.monitor.root) is not None:  # hooks inside a compiled graph would break it
            return
        for m in self._rnn:
            hooks.forward_pre(m, self._rnn_pre)
        for m in self._bn:
            hooks.forward_pre(m, self._bn_pre)
        self.eval.attach(hooks)
        self.detached.attach(hooks)
        self.monitor.on_leaf_forward.append(self.detached.leaf_forward)
        self.monitor.on_step.append(lambda monitor, rec: self.detached.settle())

    @property
    def internal_errors(self) -> list[str]:
        return self.monitor.internal_errors

    @safe
    def _rnn_pre(self, module: nn.Module, args: tuple) -> None:
        if not torch.is_grad_enabled() or not args:
            return
        x = args[0]
        if not isinstance(x, torch.Tensor) or x.dim() != 3:  # a PackedSequence or an unbatched input
            return
        calls = self._rnn[module]
        t, n = (int(x.shape[1]), int(x.shape[0])) if calls.batch_first else (int(x.shape[0]), int(x.shape[1]))
        self._pending.append((calls, t, n, tuple(x.shape)))

    @safe
    def _bn_pre(self, module: nn.Module, args: tuple) -> None:
        if not module.training or not torch.is_grad_enabled() or not module.track_running_stats:
            return
        x = first_tensor(args)
        if isinstance(x, torch.Tensor) and x.dim() >= 2:
            self.bn_batches[self._bn[module]][int(x.shape[0])] += 1

    def on_loss(self, name: str, input: Any, target: Any, kwargs: dict, train: bool) -> None:
        """A loss call: judge the RNN calls since the last one against its batch; keep its labels."""
        pending, self._pending = self._pending, []
        if not train:
            return
        seen = self.monitor._last_input  # the model's input of this step
        if seen is not None and self.rows.kind != "mixed":
            x = first_tensor(seen[0]) if seen[0] else first_tensor(seen[1])
            self.rows.add(name, x, target, kwargs, self.monitor.count + 1)
        ref = target if isinstance(target, torch.Tensor) and target.dim() >= 1 else input
        if not isinstance(ref, torch.Tensor) or ref.dim() < 1:
            return
        b = int(ref.shape[0])
        step = self.monitor.count + 1
        for calls, t, n, shape in pending:
            if self._step_seen.get(calls.name) == step:
                continue
            if n == b:
                calls.consistent += 1
            elif t == b and t > 1 and n > 1:
                calls.mismatched += 1
                if not calls.first_step:
                    calls.first_step, calls.shape, calls.loss_batch = step, shape, b
            else:
                continue
            self._step_seen[calls.name] = step
        if (
            isinstance(target, torch.Tensor)
            and target.dim() == 1
            and not target.is_floating_point()
            and target.numel() > 1
            and len(self._labels) + len(self._read) < KEEP_BATCHES
        ):
            t = detached(target)
            self._labels.append((step, int(t.numel()), torch.aminmax(t)))  # one call; stacked when read

    def _alignment(self) -> dict[str, Any] | None:
        """The nearest-neighbour evidence, computed once (the kept rows do not change after ROWS)."""
        if self._aligned is None and self.rows.n >= ROWS and self.monitor.count >= MIN_STEPS:
            self._aligned = self.rows.evidence() or {}
        return self._aligned or None

    def evidence(self) -> LayoutEvidence:
        if self._labels:  # one read of the labels kept since the last diagnosis
            ends = [v for _, _, pair in self._labels for v in pair]
            if any(v.device != ends[0].device for v in ends):
                ends = [v.to(ends[0].device) for v in ends]
            values = torch.stack(ends).long().reshape(-1, 2).tolist()
            for (step, size, _), (lo, hi) in zip(self._labels, values):
                self._read.append(LabelBatch(step, size, lo == hi, int(lo)))
            self._labels = []
        return LayoutEvidence(
            rnn=[c for c in self._rnn.values() if c.mismatched or c.consistent],
            bn_batches={n: Counter(c) for n, c in self.bn_batches.items() if c},
            bn_types={n: type(m).__name__ for m, n in self._bn.items()},
            labels=list(self._read),
            eval_dropout=list(self.eval.dropout_calls),
            eval_repeats=list(self.eval.repeats),
            detached=self.detached.read(),
            detached_marked=self.detached.marked,
            alignment=self._alignment(),
            # only the BatchNorm check reads it (a walk over every module at each diagnosis otherwise)
            dropout_modules=sum(
                isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in self.monitor.model.modules()
            )
            if self._bn
            else 0,
        )
