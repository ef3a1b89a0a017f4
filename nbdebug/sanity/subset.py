"""The tiny subset `overfit` trains on, read the way a real training loop reads it.

A real loop calls the dataset's `__getitem__` (and the loader's collate function) for every example of
every epoch. Reading the subset once would hide the data-pipeline bugs that ruin the real loop: a label
drawn at random, label noise or an augmentation applied to the target inside `__getitem__`. So when the
data is a map-style Dataset, or a DataLoader over one, `Subset.read()` reads the same indices again at
every epoch and remembers where the label of an index changed between two reads (`unstable-labels`).
Inputs that change between reads are augmentation, which is normal; they are only counted.

Labels are compared only when they are one class index per example: dense or soft targets (a
segmentation mask flipped with its image, mixup's mixed labels) may rightly change with the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from torch.utils.data._utils.collate import default_collate

from .._core.data import collect, tensor_batch, to_device
from .._core.errors import NbdebugError

MAX_REPORTED = 10  # label changes kept as evidence


@dataclass
class LabelChange:
    """Index `index` of the dataset gave label `first` on the first read and `later` on read `read`."""

    index: int
    first: Any
    later: Any
    read: int


@dataclass
class Subset:
    """`n` examples of the user's data on `device`; `read()` gives them as the next epoch would."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor | None
    device: torch.device
    dataset: Any = None  # map-style Dataset re-read every epoch (None: the tensors are all there is)
    indices: list[int] = field(default_factory=list)
    collate: Any = None
    reads: int = 1
    changes: list[LabelChange] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # dataset indices whose label changed at least once
    epochs_with_changes: int = 0
    inputs_changed: int = 0  # reads in which some input differed from the first read (augmentation)

    @property
    def source(self) -> str:
        """How to name the data in a finding: `MyDataset.__getitem__`."""
        return f"{type(self.dataset).__name__}.__getitem__" if self.dataset is not None else "the data"

    def read(self) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
        """The subset as the next epoch reads it: through `__getitem__` again when there is a dataset."""
        if self.dataset is None:
            return self.inputs, self.target
        inputs, target = _read(self.dataset, self.indices, self.collate)
        inputs = tuple(x.to(self.device) for x in inputs)
        target = target.to(self.device) if target is not None else None
        self.reads += 1
        self._compare(inputs, target)
        return inputs, target

    def _compare(self, inputs: tuple[torch.Tensor, ...], target: torch.Tensor | None) -> None:
        if any(a.shape != b.shape or not torch.equal(a, b) for a, b in zip(inputs, self.inputs)):
            self.inputs_changed += 1
        if not _class_labels(self.target) or not _class_labels(target) or target.shape != self.target.shape:
            return
        differ = torch.nonzero(target != self.target).flatten().tolist()
        if differ:
            self.epochs_with_changes += 1
        for pos in differ:
            index = self.indices[pos]
            self.changed.add(index)
            if len(self.changes) < MAX_REPORTED:
                first, later = self.target[pos].item(), target[pos].item()
                self.changes.append(LabelChange(index, first, later, self.reads))


def _class_labels(t: torch.Tensor | None) -> bool:
    """One class index per example: a 1-D integer or boolean tensor."""
    return t is not None and t.dim() == 1 and not t.is_floating_point() and not t.is_complex()


def _read(
    dataset: Any, indices: list[int], collate: Any
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """`dataset[i]` for each index, collated as the loader does, split into (inputs, target)."""
    inputs, target = tensor_batch(collate([dataset[i] for i in indices]))
    return tuple(inputs), torch.as_tensor(target) if target is not None else None


def _map_style(data: Any) -> tuple[Any, Sequence[int] | None, Any]:
    """(dataset, the order the loop reads its indices in, collate) when `data` is a map-style Dataset or
    a DataLoader that batches one (None for the order: ask the loader's sampler); else (None, None, None)."""
    if isinstance(data, DataLoader):
        ds = data.dataset
        if data.batch_sampler is None or not _indexable(ds):  # batch_size=None: the dataset makes batches
            return None, None, None
        return ds, None, data.collate_fn
    if isinstance(data, Dataset) and _indexable(data):
        return data, range(len(data)), default_collate
    return None, None, None


def _indexable(ds: Any) -> bool:
    return not isinstance(ds, IterableDataset) and hasattr(ds, "__getitem__") and hasattr(ds, "__len__")


def _loader_order(loader: DataLoader, pool: int) -> list[int]:
    """The first `pool` distinct indices the loader's batches draw (a WeightedRandomSampler repeats some)."""
    seen: dict[int, None] = {}
    for batch in loader.batch_sampler:
        for i in batch:
            seen.setdefault(int(i))
        if len(seen) >= pool:
            break
    return list(seen)[:pool]


def select(data: Any, n: int, stratify: bool, device: torch.device) -> Subset:
    """`n` examples, round-robin over classes (in order of first appearance) when labels are classes."""
    pool = max(20 * n, 500) if stratify else n
    dataset, order, collate = _map_style(data)
    if dataset is not None:
        order = list(order[:pool]) if order is not None else _loader_order(data, pool)
        if len(order) < n:
            raise NbdebugError(
                f"data has only {len(order)} examples, fewer than n={n}: lower n or pass more data"
            )
        inputs, target = _read(dataset, order, collate)
    else:
        inputs, target = collect(data, pool)
    have = inputs[0].shape[0]
    if have < n:
        raise NbdebugError(f"data has only {have} examples, fewer than n={n}: lower n or pass more data")
    picked = _stratified(target, n) if stratify else list(range(n))
    idx = torch.tensor(picked)
    sub = Subset(
        tuple(to_device(x[idx], device) for x in inputs),
        to_device(target[idx], device) if target is not None else None,
        device,
    )
    if dataset is not None:
        sub.dataset, sub.indices, sub.collate = dataset, [order[i] for i in picked], collate
    return sub


def _stratified(target: torch.Tensor | None, n: int) -> list[int]:
    if target is None or target.dim() != 1 or target.dtype.is_floating_point:
        return list(range(n))
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(target.tolist()):
        by_class.setdefault(int(c), []).append(i)
    picked: list[int] = []
    queues = list(by_class.values())
    depth = 0
    while len(picked) < n:
        for q in queues:
            if depth < len(q) and len(picked) < n:
                picked.append(q[depth])
        depth += 1
    return sorted(picked)
