"""Which tensors hold the memory: an exact inventory, the CUDA allocator's view, activation memory.

`memory(*objects, namespace=None)` walks the objects (or the notebook's namespace) the way a user names
things - `model.encoder.0.weight`, `optimizer.state[encoder.0.weight].exp_avg`, `batch["image"]`,
`history[3]` - and records every tensor with its role, shape, dtype, device and bytes. Each storage is
counted once in the totals, so views, slices and shared parameters never inflate them. The report keeps
no reference to any tensor: holding one would itself be the leak a user is hunting.

`memory.step(model, batch, loss_fn)` (in `nbdebug._memory_step`) measures activation memory per layer
and forecasts the peak as a function of batch size; `memory.watch()` samples allocated/reserved memory in
a background thread; `memory.cuda()` reads the CUDA allocator. This module never imports IPython.
"""

from __future__ import annotations

import collections
import gc
import heapq
import html
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain, compress, cycle, islice, repeat
from operator import attrgetter, mul
from typing import Any, NamedTuple

import torch
from torch import nn

from .._core.errors import NbdebugError
from .._core.findings import Finding, findings_html, findings_text
from .cuda import DeviceMemory, cuda_memory, cuda_note

ROLES = ("parameter", "gradient", "buffer", "optimizer state", "user variable", "other")
UNREACHABLE = "unreachable"

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


class TensorRecord(NamedTuple):
    """One tensor of the inventory (metadata only: the report keeps no reference to the tensor).

    A NamedTuple, not a dataclass: a scan creates one per tensor, and tuples are several times cheaper.
    """

    name: str
    role: str
    shape: tuple[int, ...]  # a torch.Size (a tuple) for ordinary tensors
    dtype: str
    device: str
    element_size: int
    nelement: int
    bytes: int  # element_size * nelement (what the tensor's own elements take)
    storage: Any  # identifies the storage (its address when allocated), shared by every view of it
    storage_bytes: int  # what it adds to the total: its whole storage if first seen on it, else 0 (meta: 0)
    view: bool  # a view of another tensor (slice, reshape, transpose...)
    shares_with: str | None  # name of the first tensor seen on the same storage, if not this one
    layout: str = "strided"
    kind: str = "Tensor"  # the Python type: Tensor, Parameter, or a subclass name
    reachable: bool = True  # False: found by the garbage collector only, no name reaches it
    requires_grad: bool = False
    has_graph: bool = False  # a non-leaf tensor: keeps its autograd graph (saved activations) alive


COLUMNS = list(TensorRecord._fields)
_SIZE_COLUMNS = ("storage_bytes", "bytes", "nelement", "element_size")


def _frame(records: list[TensorRecord]):
    """A DataFrame of records, byte counts as int64 (a single huge storage must not turn them to float)."""
    import pandas as pd

    frame = pd.DataFrame(records, columns=COLUMNS)
    frame["bytes"] = frame["bytes"].astype("int64")
    frame["storage_bytes"] = frame["storage_bytes"].astype("int64")
    return frame


@dataclass
class MemoryReport:
    """The inventory: `records` (one per tensor), deduplicated totals, the GPU section, findings."""

    records: list[TensorRecord]
    gpu: list[DeviceMemory] = field(default_factory=list)
    gpu_note: str = ""
    findings: list[Finding] = field(default_factory=list)
    scanned_objects: int = 0
    skipped: list[str] = field(default_factory=list)  # "name: why" for objects that could not be read

    # ------------------------------------------------------------------ data
    def to_frame(self):
        """One row per tensor (columns: name, role, shape, dtype, device, element_size, nelement, bytes, ...)."""
        return _frame(self.records)

    def _unique(self) -> list[TensorRecord]:
        """The first record of each storage: the one that owns it in the totals."""
        seen: set[Any] = set()
        out = []
        for r in self.records:
            if r.storage not in seen:
                seen.add(r.storage)
                out.append(r)
        return out

    @property
    def total_bytes(self) -> int:
        """Bytes of all storages, each counted once (views and shared parameters add nothing)."""
        return sum(r.storage_bytes for r in self.records)

    @property
    def sum_of_tensor_bytes(self) -> int:
        """Naive sum of element_size x nelement over all tensors (double counts views): for contrast."""
        return sum(r.bytes for r in self.records)

    def _by(self, key: str, order: Iterable[str] = ()):
        import pandas as pd

        totals: dict[str, int] = {k: 0 for k in order}
        for r in self._unique():
            k = UNREACHABLE if key == "role" and not r.reachable else getattr(r, key)
            totals[k] = totals.get(k, 0) + r.storage_bytes
        s = pd.Series(totals, name="bytes", dtype="int64")
        s.index.name = key
        return s[s > 0] if not order else s

    def by_role(self):
        """Deduplicated bytes per role (every role listed, unreachable tensors as their own role)."""
        s = self._by("role", ROLES)
        return s[(s > 0) | s.index.isin(ROLES[:5])]

    def by_device(self):
        return self._by("device")

    def by_dtype(self):
        return self._by("dtype")

    def summary(self):
        """Bytes by role x device (deduplicated), the table behind the bar chart."""
        import pandas as pd

        rows = [
            {
                "role": UNREACHABLE if not r.reachable else r.role,
                "device": r.device,
                "bytes": r.storage_bytes,
            }
            for r in self._unique()
        ]
        if not rows:
            return pd.DataFrame(columns=["role", "device", "bytes"])
        return pd.DataFrame(rows).groupby(["role", "device"], sort=False)["bytes"].sum().unstack(fill_value=0)

    def top(self, n: int = 20, by: str = "storage_bytes"):
        """The `n` largest tensors (by their storage, or `by="bytes"`), ties by name.

        A heap over the records, not a sort of the whole frame: the display calls this on every refresh.
        """
        if by not in _SIZE_COLUMNS:
            raise NbdebugError(f"top(by={by!r}): sort by one of {', '.join(_SIZE_COLUMNS)}")
        i = COLUMNS.index(by)
        return _frame(heapq.nsmallest(n, self.records, key=lambda r: (-r[i], r.name)))

    # ------------------------------------------------------------------ display
    def headline(self) -> str:
        n_storage = len(self._unique())
        return (
            f"{len(self.records)} tensors on {n_storage} storages: {fmt_bytes(self.total_bytes)} "
            f"(naive sum of tensor sizes {fmt_bytes(self.sum_of_tensor_bytes)})"
        )

    def __repr__(self) -> str:
        return f"MemoryReport({self.headline()})"

    def _text(self, n: int = 15) -> str:
        lines = [self.headline(), ""]
        roles = self.by_role()
        lines.append("by role:   " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in roles.items() if v))
        lines.append("by device: " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in self.by_device().items()))
        lines.append("by dtype:  " + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in self.by_dtype().items()))
        lines.append("")
        if self.records:
            top = self.top(n)[["name", "role", "shape", "dtype", "device", "bytes", "storage_bytes", "view"]]
            lines.append(top.to_string(index=False))
            lines.append("")
        lines.append("GPU: " + (self.gpu_note or "; ".join(d.summary() for d in self.gpu)))
        lines.append(findings_text(self.findings, empty="No findings."))
        return "\n".join(lines)

    def to_html(self, n: int = 15, chart: bool = True) -> str:
        """Static HTML: headline, totals, bar chart, top-n table, GPU section, findings."""
        from .._core.plot import figure_png, png_html
        from .plot import plot_by_role

        parts = [f'<div class="nbdebug-memory"><b>Memory</b>: {html.escape(self.headline())}']
        if chart and self.records:
            parts.append(png_html(figure_png(plot_by_role(self)), alt="bytes by role and device"))
        if self.records:
            top = self.top(n)[["name", "role", "shape", "dtype", "device", "bytes", "storage_bytes", "view"]]
            top["bytes"] = top["bytes"].map(fmt_bytes)
            top["storage_bytes"] = top["storage_bytes"].map(fmt_bytes)
            parts.append(top.to_html(index=False, classes="nbdebug-memory-table", border=0))
        parts.append(gpu_html(self.gpu, self.gpu_note))
        parts.append(findings_html(self.findings))
        return "".join(parts) + "</div>"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/plain": self._text(), "text/html": self.to_html()}


def gpu_html(devices: list[DeviceMemory], note: str) -> str:
    if not devices:
        return f'<p class="nbdebug-memory-gpu"><b>GPU</b>: {html.escape(note)}</p>'
    rows = "".join(f"<li>{html.escape(d.summary())}</li>" for d in devices)
    return f'<div class="nbdebug-memory-gpu"><b>GPU</b><ul>{rows}</ul></div>'


def fmt_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary units, as the allocator and nvidia-smi count)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_bytes(value: int | float | str) -> int:
    """'12GB' / '12 GiB' / '512MiB' / 1e9 -> bytes. GB is read as GiB, as GPU vendors quote memory."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise NbdebugError(f"a memory budget must be positive, got {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise NbdebugError(f"cannot read a memory size from {type(value).__name__} {value!r}")
    text = value.strip().replace(" ", "").upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if text and text[-1] in scale:
            return parse_bytes(float(text[:-1]) * scale[text[-1]])
        return parse_bytes(float(text))
    except ValueError:
        raise NbdebugError(
            f"cannot read a memory size from {value!r}: write e.g. '12GB' or '512MiB'"
        ) from None


# ---------------------------------------------------------------------- the scan


def _storage_of(t: torch.Tensor) -> tuple[Any, int] | None:
    """(key, nbytes) of a strided tensor's storage, or None when it has none Python can see."""
    try:
        st = t.untyped_storage()
    except Exception:
        return None
    nbytes = 0 if t.device.type == "meta" else st.nbytes()
    ptr = st.data_ptr() if t.device.type != "meta" else 0
    # data_ptr identifies allocated memory across storage objects; meta/empty storages use their identity
    key = ptr if ptr else ("cdata", st._cdata)
    return key, nbytes


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


def _order(roots: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Modules first, then optimizers, then the rest: a parameter is named by its module path."""

    def rank(item: tuple[str, Any]) -> int:
        tp = type(item[1])
        return 0 if issubclass(tp, nn.Module) else 1 if issubclass(tp, torch.optim.Optimizer) else 2

    return sorted(roots, key=rank)


def _caller_names(objects: tuple[Any, ...], depth: int = 2) -> list[str]:
    """Names the caller uses for `objects` (`memory(model, opt)` -> ['model', 'opt']), else a type name."""
    frame = sys._getframe(depth)
    scopes = [frame.f_locals, frame.f_globals]
    names = []
    for i, obj in enumerate(objects):
        found = next(
            (k for scope in scopes for k, v in scope.items() if v is obj and not k.startswith("_")),
            None,
        )
        names.append(found or f"{type(obj).__name__.lower()}{i if len(objects) > 1 else ''}")
    return names


def namespace_roots(namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """User names of a namespace worth walking (no modules, functions, classes, IPython bookkeeping)."""
    roots = []
    for k, v in list(namespace.items()):
        if k.startswith("_") or k in _IPYTHON_NAMES or issubclass(type(v), _OPAQUE):
            continue
        roots.append((k, v))
    return roots


def output_cache_roots(namespace: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """IPython's output cache (`Out[n]`): displayed tensors stay alive there, a classic notebook leak."""
    out = namespace.get("Out")
    if not isinstance(out, dict):
        return []
    return [(f"Out[{k}]", v) for k, v in out.items()]


def memory(
    *objects: Any,
    namespace: Mapping[str, Any] | None = None,
    names: list[str] | None = None,
    all: bool = False,
    gpu: bool = True,
    unreachable_warn_bytes: int = 1 << 20,
) -> MemoryReport:
    """Inventory of the tensors reachable from `objects` (or `namespace`, or the caller's globals).

    `names` labels the objects (default: the caller's variable names). `all=True` also lists tensors that
    only the garbage collector can find, marked unreachable. `gpu=False` skips the CUDA allocator section.
    """
    if names is not None and len(names) != len(objects):
        raise NbdebugError(f"got {len(objects)} objects but {len(names)} names: pass one name per object")
    if objects and namespace is not None:
        raise NbdebugError("pass either objects or namespace=, not both")
    if namespace is not None and not isinstance(namespace, Mapping):
        raise NbdebugError(f"namespace must be a dict of name -> object, got {type(namespace).__name__}")
    if objects:
        roots = list(zip(names or _caller_names(objects), objects))
        extra: list[tuple[str, Any]] = []
    else:
        ns = namespace if namespace is not None else sys._getframe(1).f_globals
        roots = namespace_roots(ns)
        extra = output_cache_roots(ns)
    scan = _Scanner()
    roots = _order(roots)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the scan allocates in bulk; a collection meanwhile would traverse the whole heap
    try:
        scan.index_parameters(roots)
        for name, obj in roots:
            try:
                scan.walk(obj, name)
            except Exception as e:  # never crash on a strange object: report what was skipped
                scan.skipped.append(f"{name}: {type(e).__name__}: {e}")
        for name, obj in extra:
            scan.walk(obj, name, "other")
        if all:
            scan.add_unreachable()
    finally:
        if gc_was_enabled:
            gc.enable()
    devices = cuda_memory() if gpu else []
    note = cuda_note() if gpu else "not read (gpu=False)"
    report = MemoryReport(
        records=scan.records,
        gpu=devices,
        gpu_note=note if not devices else "",
        scanned_objects=scan.objects,
        skipped=scan.skipped,
    )
    report.findings = inventory_findings(report, unreachable_warn_bytes) + [
        f for d in devices for f in d.findings()
    ]
    return report


def inventory_findings(report: MemoryReport, unreachable_warn_bytes: int = 1 << 20) -> list[Finding]:
    """Leaks the inventory can name: tensors no name reaches, and user tensors that keep a graph alive."""
    findings: list[Finding] = []
    lost = [r for r in report.records if not r.reachable]
    if lost:
        lost_bytes = sum(r.storage_bytes for r in lost)  # storage_bytes is 0 for all but a storage's owner
        biggest = max(lost, key=lambda r: r.storage_bytes)
        findings.append(
            Finding(
                "unreachable-tensors",
                "warning" if lost_bytes >= unreachable_warn_bytes else "info",
                f"{len(lost)} tensors ({fmt_bytes(lost_bytes)}) are alive but no notebook name reaches them; "
                f"the largest is {biggest.shape} {biggest.dtype} on {biggest.device}",
                "they are held by a closure, a hook, a cached exception traceback (sys.last_traceback) or a "
                "deleted object's cycle: `del` the holder, or run gc.collect(); then torch.cuda.empty_cache()",
                evidence={"count": len(lost), "bytes": lost_bytes},
            )
        )
    graphs = [
        r for r in report.records if r.has_graph and r.role in ("user variable", "other") and r.reachable
    ]
    if graphs:
        names = ", ".join(r.name for r in graphs[:5]) + (", ..." if len(graphs) > 5 else "")
        findings.append(
            Finding(
                "graph-retained",
                "warning",
                f"{len(graphs)} tensors kept in variables still carry their autograd graph ({names}); each "
                "keeps every activation its graph saved for backward alive",
                "store `loss.item()` or `t.detach()` (e.g. `history.append(loss.item())`), not the tensor",
                where=graphs[0].name,
                evidence={"names": [r.name for r in graphs]},
            )
        )
    return findings


def _attach() -> None:
    from . import live as _memory_watch
    from . import step as _memory_step

    for fn in (_memory_step.step, _memory_watch.watch, cuda_memory):
        setattr(memory, fn.__name__ if fn is not cuda_memory else "cuda", fn)
    this = sys.modules[__name__]
    this.step = _memory_step.step  # type: ignore[attr-defined]
    this.watch = _memory_watch.watch  # type: ignore[attr-defined]
    this.cuda = cuda_memory  # type: ignore[attr-defined]


_attach()

__all__ = ["COLUMNS", "ROLES", "MemoryReport", "TensorRecord", "fmt_bytes", "memory", "parse_bytes"]
