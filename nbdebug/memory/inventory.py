"""Which tensors hold the memory: an exact inventory, the CUDA allocator's view, activation memory.

`memory(*objects, namespace=None)` walks the objects (or the notebook's namespace) the way a user names
things - `model.encoder.0.weight`, `optimizer.state[encoder.0.weight].exp_avg`, `batch["image"]`,
`history[3]` - and records every tensor with its role, shape, dtype, device and bytes. Each storage is
counted once in the totals, so views, slices and shared parameters never inflate them. The report keeps
no reference to any tensor: holding one would itself be the leak a user is hunting.

The walk itself is `scan.py`; `nbdebug.memory` (`api.py`) is this function plus `.step`, `.watch`, `.cuda`.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError
from .._core.findings import Finding
from .._core.units import fmt_bytes
from .cuda import cuda_memory, cuda_note
from .report import MemoryReport
from .scan import _Scanner
from .sift import _IPYTHON_NAMES, _OPAQUE


def _order(roots: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Modules first, then optimizers, then the rest: a parameter is named by its module path."""

    def rank(item: tuple[str, Any]) -> int:
        tp = type(item[1])
        return 0 if issubclass(tp, nn.Module) else 1 if issubclass(tp, torch.optim.Optimizer) else 2

    return sorted(roots, key=rank)


def _caller_names(objects: tuple[Any, ...], frame: types.FrameType) -> list[str]:
    """Names the caller uses for `objects` (`memory(model, opt)` -> ['model', 'opt']), else a type name."""
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


def inventory(
    *objects: Any,
    namespace: Mapping[str, Any] | None = None,
    names: list[str] | None = None,
    all: bool = False,
    gpu: bool = True,
    unreachable_warn_bytes: int = 1 << 20,
    caller: types.FrameType | None = None,
) -> MemoryReport:
    """Inventory of the tensors reachable from `objects` (or `namespace`, or the caller's globals).

    `names` labels the objects (default: the caller's variable names). `all=True` also lists tensors that
    only the garbage collector can find, marked unreachable. `gpu=False` skips the CUDA allocator section.
    `caller` is the frame whose names label the objects (default: the frame that called this function).
    """
    caller = caller if caller is not None else sys._getframe(1)
    if names is not None and len(names) != len(objects):
        raise NbdebugError(f"got {len(objects)} objects but {len(names)} names: pass one name per object")
    if objects and namespace is not None:
        raise NbdebugError("pass either objects or namespace=, not both")
    if namespace is not None and not isinstance(namespace, Mapping):
        raise NbdebugError(f"namespace must be a dict of name -> object, got {type(namespace).__name__}")
    if objects:
        roots = list(zip(names or _caller_names(objects, caller), objects))
        extra: list[tuple[str, Any]] = []
    else:
        ns = namespace if namespace is not None else caller.f_globals
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
