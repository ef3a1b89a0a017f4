"""The scan behind `nbdebug.memory`: walk objects by the names a user would write, record each tensor
once, and read blocks of tensors in bulk (one C-level pass per attribute) instead of one by one."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping
from itertools import chain, compress, repeat
from operator import mul
from typing import Any

import torch
from torch import nn

from .._core.tensors import storage_key
from .report import TensorRecord
from .sift import (  # the scan's lookup tables and fast pre-checks
    _ATOMIC,
    _BIG,
    _DATA_PTR,
    _DEVICE,
    _DICT_ROWS,
    _DTYPE,
    _IS_CPU,
    _IS_TENSOR_TYPE,
    _IS_VIEW,
    _ITEMSIZES,
    _JUST_TENSORS,
    _NAMES,
    _NBYTES,
    _NELEMENT,
    _PLAIN,
    _REQUIRES_GRAD,
    _ROWS,
    _SEQUENCES,
    _SHAPE,
    _UNTYPED_STORAGE,
    _all_atomic,
    _block_names,
    _holding_chunks,
    _may_hold_tensor,
    _nbytes_guess,
    _new_tuple,
    _not_walked,
    _shape,
)


def _storage_of(t: torch.Tensor) -> tuple[Any, int] | None:
    """(key, nbytes) of a strided tensor's storage, or None when it has none Python can see."""
    key = storage_key(t)
    if key is None:
        return None
    return key, 0 if t.device.type == "meta" else t.untyped_storage().nbytes()


def _components(t: torch.Tensor) -> list[torch.Tensor]:
    """Inner tensors of a sparse tensor or a traceable wrapper subclass (no storage of its own)."""
    layout = t.layout
    try:
        if layout == torch.sparse_coo:
            return [t._indices(), t._values()]
        if layout in (torch.sparse_csr, torch.sparse_bsr):
            return [t.crow_indices(), t.col_indices(), t.values()]
        if layout in (torch.sparse_csc, torch.sparse_bsc):
            return [t.ccol_indices(), t.row_indices(), t.values()]
        flatten = getattr(t, "__tensor_flatten__", None)
        if flatten is not None:
            names, _ = flatten()
            return [getattr(t, n) for n in names if isinstance(getattr(t, n, None), torch.Tensor)]
    except Exception:
        return []
    return []


class _Scanner:
    """Walks objects by name with cycle protection, recording each tensor once."""

    def __init__(self) -> None:
        self.records: list[TensorRecord] = []
        self.seen: set[int] = set()  # ids of objects already visited (cycle protection)
        self.storages: dict[Any, str] = {}  # storage key -> name of its first tensor
        self.param_names: dict[int, str] = {}  # id(parameter) -> name, for naming optimizer state
        self.skipped: list[str] = []
        self.objects = 0
        self.queued: list[torch.Tensor] = []  # plain tensors waiting for flush(), with names and roles
        self.queued_names: list[str] = []
        self.queued_roles: list[str] = []

    # -- records
    def add_tensor(self, t: torch.Tensor, name: str, role: str, reachable: bool = True) -> None:
        """Record `t` once, after the tensors queued before it (the order decides whose storage it is)."""
        if self.queued:
            self.flush()
        self._record(t, name, role, reachable)

    def queue(self, t: torch.Tensor, name: str, role: str) -> None:
        """Defer a plain `torch.Tensor` (caller checked `seen`) to `flush`, which reads queues in bulk."""
        self.seen.add(id(t))
        self.queued.append(t)
        self.queued_names.append(name)
        self.queued_roles.append(role)

    def flush(self) -> None:
        """Record the queued tensors, reading each attribute with one C-level `map` over all of them.

        Per tensor that is about a third of the cost of `_record`'s attribute reads and branches, and
        collections of thousands of tensors (a cache, a list of batches) are what a scan spends its time
        on. Anything unusual in the queue - no storage (meta, empty, sparse), nested, requiring grad -
        sends the whole queue through `_record`, one by one and in order, so the result is the same.
        """
        ts, names, roles = self.queued, self.queued_names, self.queued_roles
        self.queued, self.queued_names, self.queued_roles = [], [], []
        try:
            records = self._bulk(ts, names, roles)
        except Exception:  # e.g. a sparse tensor's untyped_storage(): the general path handles it
            records = None
        if records is None:
            self.seen.difference_update(map(id, ts))  # queued as seen; _record marks them again
            for t, name, role in zip(ts, names, roles):
                self._record(t, name, role, True)
        else:
            self.records.extend(records)

    def _bulk(self, ts: list[torch.Tensor], names: list[str], roles: list[str]) -> list[TensorRecord] | None:
        """Records of plain, allocated, non-grad tensors; None when one of `ts` is not (nothing changed)."""
        if any(map(_REQUIRES_GRAD, ts)):
            return None
        storages = list(map(_UNTYPED_STORAGE, ts))
        keys = list(map(_DATA_PTR, storages))
        if not all(keys):  # meta or empty storage: identified by the storage object, see _general
            return None
        nbytes = list(map(_NBYTES, storages))
        shapes = list(map(_SHAPE, ts))  # raises for a nested tensor: the general path reads those
        nelement = list(map(_NELEMENT, ts))
        dtype_objects = list(map(_DTYPE, ts))
        dtypes = list(map(_NAMES.__getitem__, dtype_objects))
        element_size = list(map(_ITEMSIZES.__getitem__, dtype_objects))  # a dict lookup, not a call
        devices = repeat("cpu") if all(map(_IS_CPU, ts)) else list(map(_NAMES.__getitem__, map(_DEVICE, ts)))
        views = list(map(_IS_VIEW, ts))
        # from here on nothing can fail: the storage table is updated in queue order
        seen_storages = self.storages
        distinct = set(keys)
        firsts: Iterable[str | None]
        if len(distinct) == len(keys) and distinct.isdisjoint(seen_storages):  # no views: all in C
            seen_storages.update(zip(keys, names))
            firsts, storage_bytes = repeat(None), nbytes
        else:
            firsts, storage_bytes = [], []
            for key, name, size in zip(keys, names, nbytes):
                first = seen_storages.get(key)
                if first is None:
                    seen_storages[key] = name
                firsts.append(first)
                storage_bytes.append(size if first is None else 0)
        return list(
            map(
                _new_tuple,  # tuple.__new__ at C level, skipping the NamedTuple's Python-level __new__
                repeat(TensorRecord),
                zip(
                    names,
                    roles,
                    shapes,
                    dtypes,
                    devices,
                    element_size,
                    nelement,
                    map(mul, element_size, nelement),
                    keys,
                    storage_bytes,
                    views,
                    firsts,
                    repeat("strided"),
                    repeat("Tensor"),
                    repeat(True),
                    repeat(False),
                    repeat(False),
                ),  # fmt: skip
            )
        )

    def _record(self, t: torch.Tensor, name: str, role: str, reachable: bool) -> None:
        """Record one tensor of any kind. One function on purpose: calls cost in CPython."""
        oid = id(t)
        seen = self.seen
        if oid in seen:
            return
        seen.add(oid)
        try:
            try:  # sparse layouts have no storage and raise here
                st = t.untyped_storage() if type(t) in _PLAIN and not t.is_nested else None
            except Exception:
                st = None
            ptr = st.data_ptr() if st is not None else 0
            if ptr:  # plain tensors holding memory: a few C calls
                key: Any = ptr  # host and CUDA memory share one address space (UVA): the pointer is unique
                nbytes = st.nbytes()
                element_size, nelement = t.element_size(), t.nelement()
                tensor_bytes, layout, shape = element_size * nelement, "strided", t.shape
            else:  # meta, empty, sparse, nested, subclasses
                key, nbytes, tensor_bytes = self._general(t, name)
                element_size, nelement = t.element_size(), t.nelement()
                layout, shape = str(t.layout).removeprefix("torch."), _shape(t)
            storages = self.storages
            first = storages.get(key)
            if first is None:
                storages[key] = name
            try:
                is_view = t._is_view()
            except Exception:
                is_view = False
            requires_grad = t.requires_grad
            self.records.append(
                _new_tuple(  # skips the NamedTuple's Python-level __new__
                    TensorRecord,
                    (
                        name,
                        role,
                        shape,
                        _NAMES[t.dtype],
                        "cpu" if t.is_cpu else _NAMES[t.device],
                        element_size,
                        nelement,
                        tensor_bytes,
                        key,
                        nbytes if first is None else 0,
                        is_view,
                        first,
                        layout,
                        type(t).__name__,
                        reachable,
                        requires_grad,
                        requires_grad and t.grad_fn is not None,
                    ),
                )
            )
        except Exception as e:  # a subclass whose metadata raises: skip it, never crash
            self.skipped.append(f"{name}: {type(e).__name__}: {e}")
            return
        if requires_grad and t.is_leaf:
            grad = t.grad
            if grad is not None and isinstance(grad, torch.Tensor):
                self._record(grad, f"{name}.grad", "gradient", reachable)

    def _general(self, t: torch.Tensor, name: str) -> tuple[Any, int, int]:
        """(storage key, storage bytes, element bytes) of meta, sparse and subclass tensors."""
        storage = _storage_of(t) if t.layout == torch.strided else None
        if storage is not None:
            return storage[0], storage[1], 0 if t.device.type == "meta" else t.element_size() * t.nelement()
        parts = _components(t)  # sparse / wrapper subclass: count its components' storages
        keys = [s for s in (_storage_of(p) for p in parts) if s is not None]
        element_bytes = sum(p.element_size() * p.nelement() for p in parts)
        if not keys:
            return ("none", id(t)), 0, element_bytes
        nbytes = 0
        for k, b in keys:  # each component storage counted once globally
            if k not in self.storages:
                self.storages[k] = name
                nbytes += b
        return ("parts", *(k for k, _ in keys)), nbytes, element_bytes

    # -- structured objects
    def add_module(self, m: nn.Module, name: str) -> None:
        self.seen.add(id(m))
        for pname, p in m.named_parameters(remove_duplicate=True):
            self.add_tensor(p, f"{name}.{pname}", "parameter")
        for bname, b in m.named_buffers(remove_duplicate=True):
            self.add_tensor(b, f"{name}.{bname}", "buffer")
        for sub_name, sub in m.named_modules():
            self.seen.add(id(sub))
            prefix = f"{name}.{sub_name}" if sub_name else name
            try:
                attrs = object.__getattribute__(sub, "__dict__")
            except Exception:
                continue
            for k, v in list(attrs.items()):
                if not k.startswith("_") and type(v) not in _ATOMIC:
                    self.walk(v, f"{prefix}.{k}", "other")

    def add_optimizer(self, opt: torch.optim.Optimizer, name: str) -> None:
        self.seen.add(id(opt))
        for gi, group in enumerate(opt.param_groups):
            for pi, p in enumerate(group.get("params", [])):
                if isinstance(p, torch.Tensor):
                    self.add_tensor(p, f"{name}.param_groups[{gi}].params[{pi}]", "parameter")
        for p, state in list(opt.state.items()):
            pname = self.param_names.get(id(p), f"param {tuple(getattr(p, 'shape', ()))}")
            if isinstance(state, Mapping):
                for k, v in state.items():
                    if isinstance(v, torch.Tensor):
                        self.add_tensor(v, f"{name}.state[{pname}].{k}", "optimizer state")

    def index_parameters(self, roots: Iterable[tuple[str, Any]]) -> None:
        """Name parameters by their module path first, so optimizer state reads `state[fc.weight]`."""
        for _name, obj in roots:
            if issubclass(type(obj), nn.Module):
                try:
                    for pname, p in obj.named_parameters(remove_duplicate=True):
                        self.param_names.setdefault(id(p), pname)
                except Exception:
                    continue

    # -- the generic walk (iterative: deep structures never hit the recursion limit)
    def walk(self, root: Any, root_name: str, role: str = "user variable") -> None:
        try:
            self._walk(root, root_name, role)
        finally:
            self.flush()

    def _walk(self, root: Any, root_name: str, role: str) -> None:
        stack: list[tuple[Any, str]] = [(root, root_name)]
        seen = self.seen
        queue = self.queue
        while stack:
            obj, name = stack.pop()
            tp = type(obj)
            if tp in _ATOMIC:
                continue
            if issubclass(tp, torch.Tensor):
                if id(obj) not in seen:
                    if tp is torch.Tensor:
                        queue(obj, name, role)
                    else:
                        self.add_tensor(obj, name, "parameter" if issubclass(tp, nn.Parameter) else role)
                continue
            oid = id(obj)
            if oid in seen:
                continue
            seen.add(oid)
            self.objects += 1
            if issubclass(tp, nn.Module):
                self.add_module(obj, name)
                continue
            if issubclass(tp, torch.optim.Optimizer):
                self.add_optimizer(obj, name)
                continue
            if tp is list or tp is tuple or issubclass(tp, _SEQUENCES):
                if len(obj) >= _BIG and not _may_hold_tensor(obj):
                    continue
                kinds = set(map(type, obj))
                if kinds <= _ATOMIC:
                    continue
                if (kinds == _JUST_TENSORS or kinds <= _ROWS or kinds == _DICT_ROWS) and self._queue_block(
                    obj, name, role, kinds
                ):
                    continue
                children = []
                for start, chunk in _holding_chunks(obj):
                    for i, v in enumerate(chunk, start):
                        tv = type(v)
                        if tv is torch.Tensor:  # the common leaf, queued without a trip through the stack
                            if id(v) not in seen:
                                queue(v, f"{name}[{i}]", role)
                        elif tv not in _ATOMIC:
                            children.append((v, f"{name}[{i}]"))
                stack.extend(reversed(children))
                continue
            if tp is dict or issubclass(tp, Mapping):
                try:
                    checked = tp is dict and len(obj) >= _BIG
                    if checked and not _may_hold_tensor(obj):
                        continue  # checked before items() copies a vocabulary's million pairs
                    items = list(obj.items())
                except Exception as e:
                    self.skipped.append(f"{name}: {type(e).__name__}: {e}")
                    continue
                if len(items) < _BIG:
                    if _all_atomic([v for _, v in items]):
                        continue
                elif not checked and not _may_hold_tensor(obj):
                    continue
                stack.extend(
                    reversed(
                        [
                            (v, f"{name}[{k!r}]")
                            for _, chunk in _holding_chunks(items)
                            for k, v in chunk
                            if type(v) not in _ATOMIC
                        ]
                    )
                )
                continue
            if issubclass(tp, (set, frozenset)):
                if len(obj) >= _BIG and not _may_hold_tensor(obj):
                    continue
                stack.extend((v, f"{name}{{item}}") for v in obj if type(v) not in _ATOMIC)
                continue
            if _not_walked(tp):
                continue
            self._walk_attributes(obj, name, stack)

    def _queue_block(self, obj: list | tuple, name: str, role: str, kinds: set[type]) -> bool:
        """Queue a list of tensors, or of rows holding tensors, without a Python loop per tensor.

        Rows are what datasets and caches look like in a notebook: `(x, y)` pairs, `(image, 3)` with an int
        label, lists of batches, `{"x": t, "y": 3}` dicts with the same keys. False (nothing changed) when
        the block is not that plain: a repeated or already seen tensor or row, a tensor subclass, anything
        but tensors and atomic values inside; the walk then takes it item by item.
        """
        rows: list | tuple = ()
        keys: tuple = ()
        if kinds == _JUST_TENSORS:
            flat: list | tuple = obj
        elif kinds <= _ROWS:
            rows, flat = obj, list(chain.from_iterable(obj))
        elif kinds == _DICT_ROWS:
            shapes = set(map(tuple, map(dict.keys, obj)))
            if len(shapes) != 1:
                return False
            (keys,) = shapes
            rows, flat = obj, list(chain.from_iterable(map(dict.values, obj)))
        else:
            return False
        mask = None
        if rows:
            flat_kinds = set(map(type, flat))
            if torch.Tensor not in flat_kinds or not flat_kinds - _JUST_TENSORS <= _ATOMIC:
                return False
            if flat_kinds != _JUST_TENSORS:  # labels and other atomic values between the tensors
                mask = list(map(_JUST_TENSORS.__contains__, map(type, flat)))
        tensors = flat if mask is None else list(compress(flat, mask))
        ids = set(map(id, tensors))
        row_ids = set(map(id, rows))
        seen = self.seen
        if len(ids) != len(tensors) or len(row_ids) != len(rows) or not seen.isdisjoint(ids | row_ids):
            return False
        seen |= ids
        seen |= row_ids
        self.objects += len(rows)
        names = _block_names(name, obj, rows, keys)
        self.queued_names.extend(names if mask is None else compress(names, mask))
        self.queued.extend(tensors)
        self.queued_roles.extend(repeat(role, len(tensors)))
        return True

    def _walk_attributes(self, obj: Any, name: str, stack: list[tuple[Any, str]]) -> None:
        if gc.is_tracked(obj) and not _may_hold_tensor(obj):
            # Nothing to name below. Reading __dict__ would also build one: since Python 3.11 attributes
            # live inline until someone asks for the dict, so every object walked would grow by a dict.
            return
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except Exception:
            attrs = None
        if isinstance(attrs, dict):
            stack.extend(
                reversed([(v, f"{name}.{k}") for k, v in list(attrs.items()) if type(v) not in _ATOMIC])
            )
        for cls in type(obj).__mro__:
            for slot in (
                cls.__dict__.get("__slots__", ()) if isinstance(cls.__dict__.get("__slots__"), tuple) else ()
            ):
                try:
                    v = object.__getattribute__(obj, slot)
                except Exception:  # unset slot or an attribute that raises: skip it, never crash
                    continue
                if type(v) not in _ATOMIC:
                    stack.append((v, f"{name}.{slot}"))

    def add_unreachable(self) -> None:
        """Tensors the garbage collector knows about that no name reached: the leaks."""
        heap = gc.get_objects()  # every tracked object: select tensors at C speed, a type lookup each
        seen = self.seen
        found = [
            o for o in compress(heap, map(_IS_TENSOR_TYPE.__getitem__, map(type, heap))) if id(o) not in seen
        ]
        del heap
        for i, t in enumerate(sorted(found, key=_nbytes_guess, reverse=True)):
            self.add_tensor(t, f"<unreachable #{i}>", "other", reachable=False)
        del found
