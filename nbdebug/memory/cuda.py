"""The CUDA caching allocator's view: allocated, reserved, peak, and fragmentation per device.

GPU-ONLY CODE PATH: `cuda_memory()` reads `torch.cuda` and runs only where CUDA is initialized. The
arithmetic (`analyse_segments`, `DeviceMemory.findings`) is pure and takes the allocator's snapshot
format, so it is unit-tested on CPU with synthetic snapshots; `bench/gpu_check.py` runs the real thing.

Why fragmentation matters (a batch that does not fit although nvidia-smi shows free memory): the
allocator reserves memory in segments and splits them into blocks. Memory reserved but not allocated is
free only in pieces; a tensor larger than the largest free piece needs a new segment from the driver,
and when the driver has nothing left the allocation fails although `nvidia-smi` shows "free" memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .._core.findings import Finding
from .._core.units import fmt_bytes as _fmt

# Fragmentation is reported when at least this share of reserved memory is free-but-split and the
# largest free block is under half of that free memory (so one big tensor cannot use it).
FRAG_SHARE = 0.2
FRAG_MIN_BYTES = 64 << 20


@dataclass(frozen=True)
class SegmentStats:
    """What the allocator snapshot says about free space inside reserved segments."""

    segments: int
    free_blocks: int
    free_bytes: int  # reserved but not allocated ("inactive" blocks)
    largest_free_block: int


def analyse_segments(snapshot: Iterable[Mapping[str, Any]]) -> SegmentStats:
    """Free blocks inside reserved segments, from `torch.cuda.memory_snapshot()` (a list of segments)."""
    segments = free_blocks = free_bytes = largest = 0
    for seg in snapshot:
        segments += 1
        for block in seg.get("blocks", ()):
            if block.get("state") == "inactive":
                size = int(block.get("size", 0))
                free_blocks += 1
                free_bytes += size
                largest = max(largest, size)
    return SegmentStats(segments, free_blocks, free_bytes, largest)


@dataclass(frozen=True)
class DeviceMemory:
    """Allocator figures of one CUDA device, in bytes."""

    device: str
    name: str
    total: int  # device memory (driver)
    driver_free: int  # not reserved by anyone, per the driver (cudaMemGetInfo)
    allocated: int  # held by live tensors
    reserved: int  # held by the caching allocator (allocated + cached)
    peak_allocated: int
    peak_reserved: int
    segments: SegmentStats = field(default_factory=lambda: SegmentStats(0, 0, 0, 0))

    @property
    def cached(self) -> int:
        """Reserved but unallocated: what `torch.cuda.empty_cache()` would give back to the driver."""
        return max(self.reserved - self.allocated, 0)

    @property
    def largest_allocation(self) -> int:
        """Largest tensor that fits right now without freeing anything: a free block or fresh driver memory."""
        return max(self.segments.largest_free_block, self.driver_free)

    @property
    def fragmented(self) -> bool:
        cached = self.cached
        return (
            self.reserved > 0
            and cached >= FRAG_MIN_BYTES
            and cached >= FRAG_SHARE * self.reserved
            and self.segments.largest_free_block < cached / 2
        )

    def summary(self) -> str:
        return (
            f"{self.device} ({self.name}): allocated {_fmt(self.allocated)}, reserved {_fmt(self.reserved)}, "
            f"peak {_fmt(self.peak_allocated)}, total {_fmt(self.total)}; reserved-but-free "
            f"{_fmt(self.cached)} in {self.segments.free_blocks} blocks, largest "
            f"{_fmt(self.segments.largest_free_block)}; driver free {_fmt(self.driver_free)}"
        )

    def explain(self) -> str:
        """Plain words on what blocks a larger batch, if fragmentation does."""
        if not self.fragmented:
            return (
                f"No fragmentation to speak of: {_fmt(self.cached)} reserved-but-free, largest free block "
                f"{_fmt(self.segments.largest_free_block)}."
            )
        return (
            f"{_fmt(self.cached)} is reserved by PyTorch but unallocated, split into "
            f"{self.segments.free_blocks} free blocks; the largest is only "
            f"{_fmt(self.segments.largest_free_block)} and the driver has {_fmt(self.driver_free)} left, so "
            f"any tensor above {_fmt(self.largest_allocation)} fails with 'CUDA out of memory' even though "
            f"{_fmt(self.cached + self.driver_free)} looks free in nvidia-smi."
        )

    def blocks(self, nbytes: int) -> str | None:
        """Why a tensor of `nbytes` cannot be allocated now, if fragmentation (not a full card) is why."""
        free_total = self.cached + self.driver_free
        if nbytes <= self.largest_allocation or nbytes > free_total:
            return None
        return (
            f"a {_fmt(nbytes)} tensor does not fit although {_fmt(free_total)} is free: "
            f"{_fmt(self.cached)} of it is reserved by PyTorch in {self.segments.free_blocks} blocks, the "
            f"largest {_fmt(self.segments.largest_free_block)}, and the driver has {_fmt(self.driver_free)}; "
            "fragmentation, not the card's size, blocks this batch (PYTORCH_CUDA_ALLOC_CONF="
            "expandable_segments:True, or torch.cuda.empty_cache() before the step)"
        )

    def findings(self) -> list[Finding]:
        if not self.fragmented:
            return []
        return [
            Finding(
                "gpu-fragmentation",
                "warning",
                self.explain(),
                "set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True before the first CUDA call (segments "
                "grow instead of splitting), call torch.cuda.empty_cache() before the large step, or "
                "allocate the largest tensors first",
                where=self.device,
                evidence={
                    "reserved": self.reserved,
                    "allocated": self.allocated,
                    "largest_free_block": self.segments.largest_free_block,
                    "free_blocks": self.segments.free_blocks,
                },
            )
        ]


def cuda_note() -> str:
    """One line saying why there is no GPU section, or '' when there is one."""
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False): nothing to report"
    if not torch.cuda.is_initialized():
        return "CUDA is available but not initialized in this process: nothing allocated on the GPU yet"
    return ""


def cuda_memory(devices: Iterable[int] | None = None) -> list[DeviceMemory]:
    """Allocator figures per CUDA device (GPU only); [] when CUDA is absent or not yet initialized.

    Reading never initializes CUDA: that alone would reserve hundreds of MiB for the context.
    """
    if cuda_note():
        return []
    out = []
    indices = list(devices) if devices is not None else range(torch.cuda.device_count())
    snapshot = torch.cuda.memory_snapshot()
    for i in indices:
        free, total = torch.cuda.mem_get_info(i)
        segs = analyse_segments(s for s in snapshot if s.get("device") == i)
        out.append(
            DeviceMemory(
                device=f"cuda:{i}",
                name=torch.cuda.get_device_name(i),
                total=int(total),
                driver_free=int(free),
                allocated=int(torch.cuda.memory_allocated(i)),
                reserved=int(torch.cuda.memory_reserved(i)),
                peak_allocated=int(torch.cuda.max_memory_allocated(i)),
                peak_reserved=int(torch.cuda.max_memory_reserved(i)),
                segments=segs,
            )
        )
    return out
