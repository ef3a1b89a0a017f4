"""Turning what users pass as `data` into batches, and batches into (inputs, target).

`data` may be a DataLoader, a Dataset, a `(x, y)` tuple of tensors, a single tensor, or any iterable of
batches; a batch may be a tensor, a tuple/list `(x, y)` / `(x1, x2, y)`, or a dict with a target key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch

from .errors import NbdebugError, describe

TARGET_KEYS = ("label", "labels", "target", "targets", "y")
INPUT_KEYS = ("image", "images", "input", "inputs", "x", "pixel_values", "input_ids")


def split_batch(batch: Any) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
    """Split a batch into (positional inputs, keyword inputs, target or None)."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}, None
    if isinstance(batch, Mapping):
        target_key = next((k for k in TARGET_KEYS if k in batch), None)
        target = batch[target_key] if target_key else None
        rest = {k: v for k, v in batch.items() if k != target_key}
        input_key = next((k for k in INPUT_KEYS if k in rest), None)
        if input_key is not None and len(rest) == 1:
            return (rest[input_key],), {}, target
        return (), dict(rest), target
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise NbdebugError("got an empty batch: expected (inputs, target) or a tensor")
        if len(batch) == 1:
            return (batch[0],), {}, None
        return tuple(batch[:-1]), {}, batch[-1]
    raise NbdebugError(
        f"cannot read a batch of type {type(batch).__name__}: expected a tensor, an (inputs, target) "
        "tuple, or a dict with one of the keys " + ", ".join(TARGET_KEYS)
    )


def _is_tensor_pair(data: Any) -> bool:
    return (
        isinstance(data, (tuple, list))
        and len(data) >= 1
        and all(isinstance(t, torch.Tensor) for t in data)
        and len({t.shape[0] if t.dim() else -1 for t in data}) == 1
    )


def _check_not_mismatched(data: Any) -> None:
    """`(x, y)` / `(x1, x2, y)` whose first dimensions differ: not one example per row, and not a
    sequence of batches either (those are batches of one kind: the same shape after the first dimension
    and the same dtype). Read as batches, `y` would be fed to the model."""
    if not isinstance(data, (tuple, list)) or not 2 <= len(data) <= 3:
        return
    if not all(isinstance(t, torch.Tensor) and t.dim() > 0 for t in data):
        return
    if len({t.shape[0] for t in data}) == 1 or len({(tuple(t.shape[1:]), t.dtype) for t in data}) == 1:
        return
    names = ("x", "y") if len(data) == 2 else ("x1", "x2", "y")
    shapes = " and ".join(f"{n} {describe(t)}" for n, t in zip(names, data))
    raise NbdebugError(
        f"data is ({', '.join(names)}) whose first dimensions differ: {shapes}. Each row of x needs its "
        f"target in the same row of y ({data[0].shape[0]} inputs, {data[-1].shape[0]} targets): check "
        "the slicing or the train/validation split that made them"
    )


def iter_batches(data: Any, batch_size: int = 64) -> Iterator[Any]:
    """Yield batches from any supported `data`; tensors and datasets are cut into `batch_size` chunks.
    `(x, y)` tensors whose first dimensions differ raise `NbdebugError` naming both shapes."""
    _check_not_mismatched(data)
    if isinstance(data, torch.Tensor):
        for i in range(0, len(data), batch_size):
            yield data[i : i + batch_size]
        return
    if _is_tensor_pair(data):
        n = data[0].shape[0]
        for i in range(0, n, batch_size):
            yield tuple(t[i : i + batch_size] for t in data)
        return
    if isinstance(data, Mapping) and all(isinstance(v, torch.Tensor) for v in data.values()):
        yield data
        return
    if isinstance(data, torch.utils.data.DataLoader):
        yield from data
        return
    if (
        isinstance(data, torch.utils.data.Dataset)
        and hasattr(data, "__len__")
        and hasattr(data, "__getitem__")
    ):
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
        yield from loader
        return
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        yield from data
        return
    raise NbdebugError(
        f"cannot iterate over data of type {type(data).__name__}: pass a DataLoader, a Dataset, "
        "an (x, y) tuple of tensors, or an iterable of batches"
    )


def tensor_batch(batch: Any) -> tuple[tuple[torch.Tensor, ...], Any]:
    """(tensor inputs, target or None) of one batch whose inputs are tensors passed positionally."""
    inputs, kwargs, target = split_batch(batch)
    if kwargs:
        raise NbdebugError(
            f"dict batches with several inputs are not supported here: got keys {sorted(kwargs)}; "
            "pass a batch whose inputs are under one of " + ", ".join(INPUT_KEYS)
        )
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise NbdebugError(f"expected tensor inputs in each batch, got {describe(inputs)}")
    return inputs, target


def collect(data: Any, n: int | None = None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """Concatenate the first `n` examples (all when None) of `data` into (inputs, target) tensors."""
    xs: list[tuple[Any, ...]] = []
    ys: list[Any] = []
    count = 0
    for batch in iter_batches(data):
        inputs, target = tensor_batch(batch)
        xs.append(inputs)
        if target is not None:
            ys.append(torch.as_tensor(target))
        count += inputs[0].shape[0]
        if n is not None and count >= n:
            break
    if not xs:
        raise NbdebugError("data is empty: the loader yielded no batch")
    if ys and len(ys) != len(xs):
        raise NbdebugError("some batches have a target and some do not")
    inputs = tuple(torch.cat([b[i] for b in xs])[:n] for i in range(len(xs[0])))
    target = torch.cat(ys)[:n] if ys else None
    return inputs, target


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor inside a nested batch to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return (
            type(obj)({k: to_device(v, device) for k, v in obj.items()})
            if isinstance(obj, dict)
            else {k: to_device(v, device) for k, v in obj.items()}
        )
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
