"""The scan's fast paths: lookup tables keyed by type and dtype, the C-speed pre-check that skips objects
without a tensor below them, and the names of rows read in bulk. Kept apart from the walk itself
(`scan.py`) because these run once per object of the heap and are tuned for that."""

from __future__ import annotations

import collections
import gc
import types
from collections.abc import Iterable
from itertools import chain, compress, cycle, islice, repeat
from operator import attrgetter
from typing import Any

import torch
from torch import nn

# Values that can never hold a tensor: skipped without descending (the scan's hot path).
_ATOMIC: frozenset[type] = frozenset(
    {int, float, complex, bool, str, bytes, bytearray, type(None), range, slice, type(Ellipsis)}
    | {torch.dtype, torch.device, torch.Size, torch.layout, torch.memory_format}
)
# Kinds of objects whose attributes are never walked (code, modules, and the IPython machinery).
_OPAQUE: tuple[type, ...] = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.FrameType,
    types.CodeType,
    types.GeneratorType,
    types.CoroutineType,
    types.TracebackType,
    property,
    staticmethod,
    classmethod,
)
_SKIP_PACKAGES = (
    "IPython",
    "ipykernel",
    "ipywidgets",
    "traitlets",
    "zmq",
    "jupyter_client",
    "tornado",
    "asyncio",
    "threading",
    "logging",
    "matplotlib",
    "pandas",
    "numpy",
    "nbdebug",
    "_pytest",
    "pytest",
    "pluggy",
)
# IPython's bookkeeping names: the output cache is scanned separately, the rest never holds user data.
_IPYTHON_NAMES = frozenset(
    {"In", "Out", "_ih", "_oh", "_dh", "_", "__", "___", "exit", "quit", "get_ipython"}
)


_PLAIN = frozenset({torch.Tensor, nn.Parameter})
# Walked item by item, named seq[i]. deque: the recent-losses window; other Sequence types may load
# or compute their items on access (a Dataset), so they are walked through their attributes instead.
_SEQUENCES = (list, tuple, collections.deque)
_JUST_TENSORS = {torch.Tensor}
_ROWS = frozenset({list, tuple})  # rows of a block of tensors: (x, y) pairs, lists of batches
_DICT_ROWS = {dict}  # rows of a block as dicts with the same keys: {"x": t, "y": 3}
_new_tuple = tuple.__new__
# Unbound C-level accessors: `map(accessor, tensors)` reads one attribute of many tensors without a
# Python-level call per tensor (see _Scanner.flush).
_UNTYPED_STORAGE = torch.Tensor.untyped_storage
_DATA_PTR = torch.UntypedStorage.data_ptr
_NBYTES = torch.UntypedStorage.nbytes
_NELEMENT = torch.Tensor.nelement
_IS_VIEW = torch.Tensor._is_view
_SHAPE = attrgetter("shape")
_DTYPE = attrgetter("dtype")
_DEVICE = attrgetter("device")
_IS_CPU = attrgetter("is_cpu")
_REQUIRES_GRAD = attrgetter("requires_grad")


class _Names(dict):
    """'float32' / 'cuda:0' by dtype or device, cached: str() of a device costs a microsecond."""

    def __missing__(self, value: torch.dtype | torch.device) -> str:
        name = self[value] = str(value).removeprefix("torch.")
        return name


class _ItemSizes(dict):
    """Bytes per element by dtype (what `element_size()` returns), cached."""

    def __missing__(self, dtype: torch.dtype) -> int:
        size = self[dtype] = torch.empty((), dtype=dtype).element_size()
        return size


class _TensorTypes(dict):
    """Whether a type is a tensor type, cached: one dict lookup per object when sifting the gc heap."""

    def __missing__(self, tp: type) -> bool:
        flag = self[tp] = issubclass(tp, torch.Tensor)
        return flag


_IS_TENSOR_TYPE = _TensorTypes()
_NAMES = _Names()
_ITEMSIZES = _ItemSizes()
_SUFFIXES: list[str] = []


def _index_suffixes(n: int) -> list[str]:
    """'[0]', '[1]', ... '[n-1]', kept between scans: `name + suffix` costs half an f-string."""
    if len(_SUFFIXES) < n:
        _SUFFIXES.extend(f"[{i}]" for i in range(len(_SUFFIXES), n))
    return _SUFFIXES[:n]


def _block_names(name: str, obj: list | tuple, rows: list | tuple, keys: tuple) -> list[str]:
    """Names of every item of a block, row by row: `cache[3][1]`, `data[7]['x']`, built at C level."""
    if not rows:
        return list(map(name.__add__, _index_suffixes(len(obj))))
    inner = [f"[{k!r}]" for k in keys] if keys else None
    if inner is None:
        lengths = list(map(len, rows))
        if lengths.count(lengths[0]) != len(lengths):  # ragged rows: one map per row
            suffixes = _index_suffixes(max(len(rows), *lengths))
            names: list[str] = []
            for prefix, n in zip(map(name.__add__, suffixes), lengths):
                names.extend(map(prefix.__add__, suffixes[:n]))
            return names
        inner = _index_suffixes(lengths[0])
    if not inner:
        return []
    prefixes = map(name.__add__, _index_suffixes(len(rows)))
    return list(
        map(str.__add__, chain.from_iterable(map(repeat, prefixes, repeat(len(inner)))), cycle(inner))
    )


def _shape(t: torch.Tensor) -> tuple[Any, ...]:
    """The shape; a nested tensor's ragged dimension reads as -1 (its components differ in size)."""
    try:
        return tuple(t.shape)
    except Exception:
        sizes = t._nested_tensor_size() if t.is_nested else None
        if sizes is None or sizes.numel() == 0:
            return ()
        return (sizes.shape[0], *(int(c[0]) if bool((c == c[0]).all()) else -1 for c in sizes.T))


def _nbytes_guess(t: torch.Tensor) -> int:
    try:
        return t.element_size() * t.nelement()
    except Exception:
        return 0


_BIG = 32  # containers at least this long get the C-speed pre-check before a walk by name
_CHUNK = 64  # a long sequence is walked by name only in the chunks of this many items that hold tensors


def _holding_chunks(items: list | tuple) -> Iterable[tuple[int, list | tuple]]:
    """(start index, items) of the parts of a sequence under which a tensor may lie.

    A list of 50,000 user objects with one tensor among them passes the pre-check as a whole; walking
    every object by name would cost microseconds each. Each chunk gets the C-speed pre-check instead, and
    only chunks that may hold a tensor are walked: one extra C pass over the list, at most.
    """
    if len(items) < 2 * _CHUNK:
        yield 0, items
        return
    it = iter(items)
    for start in range(0, len(items), _CHUNK):
        chunk = list(islice(it, _CHUNK))
        if _may_hold_tensor(chunk):
            yield start, chunk


_SKIP_TYPES: dict[type, bool] = {}


def _not_walked(tp: type) -> bool:
    """Types the scan never descends into: code, classes, modules, and the IPython/pandas machinery."""
    skip = _SKIP_TYPES.get(tp)
    if skip is None:
        skip = _SKIP_TYPES[tp] = (
            issubclass(tp, _OPAQUE)
            or (getattr(tp, "__module__", "") or "").split(".", 1)[0] in _SKIP_PACKAGES
        )
    return skip


def _may_hold_tensor(root: Any, budget: int = 4_000_000, depth: int = 64) -> bool:
    """Whether any tensor may lie under `root`, at C speed: breadth-first over `gc.get_referents`.

    `gc.is_tracked` drops ints, floats, strings and containers holding only those in one C-level pass,
    so a list of a million records costs milliseconds; the walk by name (which builds paths, and guards
    cycles exactly) then only enters containers that can hold a tensor. No visited set here: building one
    costs more than the walk. A cycle or heavy sharing exhausts `depth` or `budget` and answers True, the
    safe side: the exact walk decides.
    """
    frontier = [root]
    first = type(root) is list or type(root) is tuple  # their items are their referents: no copy needed
    while frontier:
        refs = list(filter(gc.is_tracked, root if first else gc.get_referents(*frontier)))
        first = False
        budget -= len(refs)
        depth -= 1
        if budget < 0 or depth < 0:
            return bool(refs)
        types = set(map(type, refs))
        good = set()
        for tp in types:
            if issubclass(tp, torch.Tensor):
                return True
            if not _not_walked(tp):
                good.add(tp)
        # drop classes, functions and modules (a class leads to every module): selection in C, no loop
        frontier = (
            refs if len(good) == len(types) else list(compress(refs, map(good.__contains__, map(type, refs))))
        )
    return False


def _all_atomic(values: Any) -> bool:
    """True when no value can hold a tensor: one C-level pass instead of a Python loop per item."""
    try:
        return set(map(type, values)) <= _ATOMIC
    except Exception:
        return False
