"""What the memory inventory returns: one record per tensor (metadata only, never the tensor) and the
totals by role, device and dtype with each storage counted once."""

from __future__ import annotations

import heapq
import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .._core.errors import NbdebugError
from .._core.findings import Finding, findings_html, findings_text
from .._core.result import Result
from .._core.units import fmt_bytes
from .cuda import DeviceMemory

ROLES = ("parameter", "gradient", "buffer", "optimizer state", "user variable", "other")
UNREACHABLE = "unreachable"


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


@dataclass(repr=False)
class MemoryReport(Result):
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

    def by_role_and_device(self):
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
    def summary(self) -> str:
        n_storage = len(self._unique())
        return (
            f"{len(self.records)} tensors on {n_storage} storages: {fmt_bytes(self.total_bytes)} "
            f"(naive sum of tensor sizes {fmt_bytes(self.sum_of_tensor_bytes)})"
        )

    def to_text(self, n: int = 15) -> str:
        """Headline, totals by role, device and dtype, the `n` largest tensors, the GPU, the findings."""
        lines = [self.summary(), ""]
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
        return super().to_html() if (n, chart) == (15, True) else self._html(n, chart)

    def _html(self, n: int = 15, chart: bool = True) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import by_role_figure

        parts = [f'<div class="nbdebug-memory"><b>Memory</b>: {html.escape(self.summary())}']
        if chart and self.records:
            parts.append(png_html(figure_png(by_role_figure(self)), alt="bytes by role and device"))
        if self.records:
            top = self.top(n)[["name", "role", "shape", "dtype", "device", "bytes", "storage_bytes", "view"]]
            top["bytes"] = top["bytes"].map(fmt_bytes)
            top["storage_bytes"] = top["storage_bytes"].map(fmt_bytes)
            parts.append(top.to_html(index=False, classes="nbdebug-memory-table", border=0))
        parts.append(gpu_html(self.gpu, self.gpu_note))
        parts.append(findings_html(self.findings))
        return "".join(parts) + "</div>"


def gpu_html(devices: list[DeviceMemory], note: str) -> str:
    if not devices:
        return f'<p class="nbdebug-memory-gpu"><b>GPU</b>: {html.escape(note)}</p>'
    rows = "".join(f"<li>{html.escape(d.summary())}</li>" for d in devices)
    return f'<div class="nbdebug-memory-gpu"><b>GPU</b><ul>{rows}</ul></div>'
