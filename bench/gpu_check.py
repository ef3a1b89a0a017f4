"""GPU check for nbdebug's CUDA memory paths: one short run on a CUDA machine, PASS/FAIL per line.

Run from the repository root: `python bench/gpu_check.py` (about a minute; needs torch with CUDA, no
pandas/matplotlib calls on the checked paths). Exit status 0 when every check passes, 1 when one fails,
2 when there is no CUDA device to check. Every check prints the numbers it compared.

Checks: reading memory never initializes CUDA; the inventory of a CUDA model + Adam is exact and agrees
with the allocator; `cuda_memory()` agrees with `torch.cuda` and its snapshot arithmetic; deliberate
fragmentation is named (gpu-fragmentation) and really blocks a larger tensor from the free blocks;
`memory.step` on CUDA: the dispatch tracker against the allocator's peak, the meta forecast against the
measured peak, the out-of-memory fallback; the live watch on the CUDA allocator; an unreachable CUDA
tensor found with all=True.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import nn

MiB = 2**20
RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((name, bool(ok), detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return bool(ok)


def guarded(fn):
    """Run one group of checks; an exception is a FAIL line, never the end of the run."""

    def run() -> None:
        try:
            fn()
        except Exception as e:
            check(fn.__name__, False, f"raised {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")

    return run


def unique_storage_bytes(tensors) -> int:
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@guarded
def no_init_on_read() -> None:
    import nbdebug
    from nbdebug.memory.cuda import cuda_memory, cuda_note

    before = torch.cuda.is_initialized()
    report = nbdebug.memory(torch.ones(3), names=["x"])
    devices = cuda_memory()
    check(
        "reading does not initialize CUDA",
        not before
        and not torch.cuda.is_initialized()
        and devices == []
        and "not initialized" in report.gpu_note,
        f"initialized before={before} after={torch.cuda.is_initialized()}, note={cuda_note()!r}",
    )


@guarded
def inventory_on_cuda() -> None:
    from nbdebug.memory.api import memory

    warm = nn.Linear(8, 8).cuda()  # cuBLAS keeps its workspace in the allocator: create it before measuring
    warm(torch.ones(2, 8, device="cuda")).sum().backward()
    del warm
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 256)).cuda()
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(64, 1024, device="cuda")
    model(x).sum().backward()
    opt.step()
    torch.cuda.synchronize()
    report = memory(model, opt, x, names=["model", "opt", "x"])
    tensors = [*model.parameters(), *(p.grad for p in model.parameters()), x]
    tensors += [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    cuda_tensors = [t for t in tensors if t.is_cuda]
    expected = unique_storage_bytes(cuda_tensors)
    cuda_total = sum(r.storage_bytes for r in report.records if r.device.startswith("cuda"))
    check("inventory total is exact on CUDA", cuda_total == expected, f"{cuda_total} vs {expected}")
    allocated = torch.cuda.memory_allocated() - base
    # the allocator rounds each block up to 512 B; nothing else was allocated in between
    slack = 512 * len(cuda_tensors)
    check(
        "inventory agrees with torch.cuda.memory_allocated",
        0 <= allocated - cuda_total <= slack,
        f"allocated {allocated} B, inventory {cuda_total} B, rounding allowance {slack} B",
    )
    roles = {}
    for r in report.records:
        roles[r.role] = roles.get(r.role, 0) + r.storage_bytes
    params = sum(p.numel() * 4 for p in model.parameters())
    check(
        "Adam 4x rule on CUDA",
        roles.get("gradient") == params
        and abs(roles.get("optimizer state", 0) - 2 * params) <= 8 * len(opt.state),
        f"{roles}",
    )
    gpu = report.gpu
    check(
        "GPU section present",
        len(gpu) == torch.cuda.device_count() and gpu[0].allocated > 0,
        gpu[0].summary(),
    )
    del model, opt, x, report


@guarded
def allocator_figures() -> None:
    from nbdebug.memory.cuda import analyse_segments, cuda_memory

    keep = [torch.empty(3 * MiB, dtype=torch.uint8, device="cuda") for _ in range(4)]
    torch.cuda.synchronize()
    [dev] = cuda_memory([0])
    check(
        "cuda_memory matches torch.cuda",
        dev.allocated == torch.cuda.memory_allocated(0)
        and dev.reserved == torch.cuda.memory_reserved(0)
        and dev.peak_allocated == torch.cuda.max_memory_allocated(0)
        and dev.total == torch.cuda.get_device_properties(0).total_memory,
        dev.summary(),
    )
    snap = torch.cuda.memory_snapshot()
    segs = analyse_segments(s for s in snap if s.get("device") == 0)
    pending = sum(
        b["size"]
        for s in snap
        if s.get("device") == 0
        for b in s["blocks"]
        if b["state"] == "active_pending_free"
    )
    check(
        "snapshot free blocks = reserved - allocated",
        abs(dev.cached - segs.free_bytes) <= pending,
        f"inactive {segs.free_bytes} + pending {pending} vs reserved-allocated {dev.cached}",
    )
    del keep


@guarded
def fragmentation() -> None:
    import os

    from nbdebug.memory.api import memory

    conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
    if "expandable_segments:True" in conf:
        print(f"SKIP fragmentation: PYTORCH_CUDA_ALLOC_CONF={conf} (segments grow instead of splitting)")
        return
    torch.cuda.empty_cache()
    blocks = [torch.empty(20 * MiB, dtype=torch.uint8, device="cuda") for _ in range(64)]
    del blocks[::2]  # 32 free 20 MiB blocks, each in its own segment: 640 MiB cached, in pieces
    torch.cuda.synchronize()
    report = memory(torch.ones(1), names=["x"])
    [dev] = [d for d in report.gpu if d.device == f"cuda:{torch.cuda.current_device()}"]
    codes = [f.code for f in report.findings]
    check(
        "fragmentation is named",
        dev.fragmented and "gpu-fragmentation" in codes and dev.segments.largest_free_block <= 21 * MiB,
        f"cached {dev.cached / MiB:.0f} MiB in {dev.segments.free_blocks} blocks, largest "
        f"{dev.segments.largest_free_block / MiB:.0f} MiB; findings {codes}",
    )
    finding = next((f for f in report.findings if f.code == "gpu-fragmentation"), None)
    print(f"     {finding}")
    reserved = torch.cuda.memory_reserved()
    big = torch.empty(30 * MiB, dtype=torch.uint8, device="cuda")  # larger than any free block
    grown = torch.cuda.memory_reserved() - reserved
    check(
        "a tensor above the largest free block needs new memory",
        grown >= 30 * MiB,
        f"reserved grew by {grown / MiB:.0f} MiB although {dev.cached / MiB:.0f} MiB was cached",
    )
    del big, blocks
    torch.cuda.empty_cache()


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 16 * 16, 10),
    )  # fmt: skip


@guarded
def step_on_cuda() -> None:
    from nbdebug.memory.step import step

    model = conv_net().cuda()
    x, y = torch.randn(256, 3, 32, 32, device="cuda"), torch.randint(0, 10, (256,), device="cuda")
    loss_fn = nn.CrossEntropyLoss()
    weights = [p.detach().clone() for p in model.parameters()]
    result = step(model, (x, y), loss_fn, optimizer=torch.optim.Adam(model.parameters()))
    tracker, allocator = result.peak_bytes, result.allocator_peak
    # cuDNN/cuBLAS workspaces come from the allocator without being op outputs: allow for them
    check(
        "dispatch tracker vs allocator peak",
        allocator is not None
        and tracker <= allocator * 1.02
        and allocator - tracker <= max(0.25 * allocator, 64 * MiB),
        f"tracker {tracker / MiB:.1f} MiB, allocator {allocator / MiB:.1f} MiB",
    )
    f = result.forecast
    check(
        "meta forecast vs measured step peak",
        f is not None and f.method == "meta" and abs(result.forecast_error) < 0.10,
        f"{f.formula()}; at N=256 {f.step_bytes(256) / MiB:.1f} MiB vs tracker {tracker / MiB:.1f} MiB "
        f"({result.forecast_error:+.1%}), allocator {allocator / MiB:.1f} MiB",
    )
    total = torch.cuda.get_device_properties(0).total_memory
    check(
        "budget defaults to device memory; largest batch checked on meta",
        result.budget == total and result.max_batch and result.verified and result.verified[1] <= total,
        f"budget {total / 2**30:.1f} GiB, largest batch {result.max_batch}, meta peak {result.verified}",
    )
    check(
        "model unchanged on CUDA",
        all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
        and all(p.grad is None for p in model.parameters()),
        "weights equal, gradients None as before",
    )


@guarded
def step_out_of_memory() -> None:
    from nbdebug.memory.step import step

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    width = 2**20  # output (N, 2**20) float32: 4 MiB per example
    n = int(total * 1.2 // (4 * width)) + 1  # the forward alone needs 1.2x the device
    model = nn.Linear(1, width).cuda()
    x, y = torch.randn(n, 1, device="cuda"), torch.randn(n, width, device="meta")
    loss_fn = lambda out, target: out.float().pow(2).mean()  # noqa: E731
    result = step(model, (x, y), loss_fn)
    torch.cuda.synchronize()
    leaked = (
        torch.cuda.memory_allocated()
        - base
        - sum(t.untyped_storage().nbytes() for t in (x, *model.parameters()))
    )
    check(
        "out-of-memory step falls back to meta and forecasts",
        result.device == "meta"
        and any("out of memory" in n for n in result.notes)
        and 0 < result.max_batch < n,
        f"batch {n} does not fit; largest that fits {result.max_batch}; notes {result.notes}",
    )
    check("no memory left behind after OOM", leaked <= 0, f"{leaked} B above the inputs and weights")
    del model, x


@guarded
def watch_on_cuda() -> None:
    from nbdebug.memory.live import MemoryWatch

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    w = MemoryWatch(interval=0.01, seconds=1.0, device="cuda").start()
    time.sleep(0.1)
    blob = torch.empty(1024 * MiB, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    time.sleep(0.2)
    del blob
    t0 = time.monotonic()
    while w.running and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    top = max(s.allocated for s in w.samples)
    check(
        "live watch samples the CUDA allocator and stops itself",
        not w.running and top - base >= 1024 * MiB and "cuda" in w.source and len(w.samples) >= 20,
        f"{len(w.samples)} samples from {w.source}, peak {(top - base) / MiB:.0f} MiB above baseline",
    )


@guarded
def unreachable_on_cuda() -> None:
    from nbdebug.memory.api import memory

    def make():
        hidden = torch.zeros(4 * MiB, device="cuda")

        def inner():
            return hidden

        return inner

    keep = make()
    report = memory(namespace={"x": torch.ones(1)}, all=True)
    lost = [r for r in report.records if not r.reachable and r.device.startswith("cuda")]
    check(
        "unreachable CUDA tensor found with all=True",
        any(r.shape == (4 * MiB,) for r in lost)
        and any(f.code == "unreachable-tensors" for f in report.findings),
        f"{[(r.name, tuple(r.shape), r.device) for r in lost[:3]]}",
    )
    del keep


def main() -> int:
    if not torch.cuda.is_available():
        print("CANNOT RUN: no CUDA device (torch.cuda.is_available() is False)")
        return 2
    print(
        f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s)"
    )
    start = time.monotonic()
    no_init_on_read()  # must run first: nothing has touched CUDA yet
    for group in (inventory_on_cuda, allocator_figures, fragmentation, step_on_cuda, step_out_of_memory,
                  watch_on_cuda, unreachable_on_cuda):  # fmt: skip
        group()
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed ({time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
