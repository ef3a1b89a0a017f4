"""One prepared check of nbdebug's GPU paths (memory, watch, GAN) for when a GPU machine is lent.

Run from the repository root: `python bench/gpu_check.py` (under 5 minutes on one GPU; needs torch with
CUDA). Every check prints PASS/FAIL (or SKIP) with the numbers it compared, then the overhead ratios of the
three paths (synchronized timing, medians of interleaved rounds), then `N passed, M failed`.
Exit status: 0 every check passed, 1 a check failed, 2 no CUDA device (nothing was checked).
`--cpu-smoke` runs the same script on the CPU with small sizes (the CUDA-only memory checks SKIP), so that
its logic is tested where there is no GPU (tests/test_gpu_check.py); it exits 0 or 1 like the real run.

memory  reading memory never initializes CUDA; the inventory of a CUDA model + Adam is exact and agrees
        with the allocator; `cuda_memory()` agrees with `torch.cuda` and its snapshot arithmetic;
        deliberate fragmentation is named (gpu-fragmentation) and really blocks a larger tensor;
        `memory.step`: the dispatch tracker against the allocator's peak, the meta forecast against the
        measured peak, the out-of-memory fallback; the live watch on the CUDA allocator; an unreachable
        CUDA tensor found with all=True. Overhead: `memory.step` against a bare forward + backward.
watch   a healthy CNN stays silent; a missing zero_grad() is named on step 2; a NaN is traced to its
        layer by the on-device forward replay; the same final weights with and without the watch
        (deterministic algorithms); a model compiled with the default backend (inductor) gives the same
        findings as eager. Overhead: the default and every-step watch against the bare step.
gan     a healthy digits DCGAN stays silent; a missing optG.zero_grad() is named by G step 2; weights,
        BatchNorm buffers and the CUDA RNG stream identical with and without watch_gan; frames come back
        on the CPU. Overhead: watch_gan against the bare loop.

This merges the former gpu_check.py (memory), gpu_watch_check.py and gpu_gan_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault(
    "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
)  # deterministic cuBLAS for the same-weights checks
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from torch import nn

MiB = 2**20
RESULTS: list[tuple[str, bool, str]] = []
OVERHEADS: list[tuple[str, float, float]] = []  # (what, ms per step bare, ms per step with nbdebug)
SMOKE = False  # --cpu-smoke: small sizes on the CPU
DEVICE = "cuda"
ROUNDS = 5  # interleaved timing rounds (1 in the smoke run: its ratios only show the printing works)


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((name, bool(ok), detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return bool(ok)


def skip(name: str, why: str) -> None:
    print(f"SKIP {name}: {why}", flush=True)


def guarded(fn):
    """Run one group of checks; an exception is a FAIL line, never the end of the run."""

    def run() -> None:
        try:
            fn()
        except Exception as e:
            check(fn.__name__, False, f"raised {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}")

    run.__name__ = fn.__name__
    return run


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed_rounds(variants: dict, rounds: int) -> dict[str, float]:
    """Median seconds of each variant, run in turn round after round (drift hits all alike)."""
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


# -- memory (CUDA) -------------------------------------------------------------------------------------
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


@guarded
def memory_step_smoke() -> None:
    """The device-independent part of the memory path: the inventory and `memory.step` on DEVICE."""
    from nbdebug.memory.api import memory
    from nbdebug.memory.step import step

    model = conv_net().to(DEVICE)
    opt = torch.optim.Adam(model.parameters())
    n = 8 if SMOKE else 256
    x, y = torch.randn(n, 3, 32, 32, device=DEVICE), torch.randint(0, 10, (n,), device=DEVICE)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    report = memory(model, opt, x, names=["model", "opt", "x"])
    tensors = [*model.parameters(), *model.buffers(), *(p.grad for p in model.parameters()), x]
    tensors += [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    expected = unique_storage_bytes([t for t in tensors if t.device.type == DEVICE])
    total = sum(r.storage_bytes for r in report.records if r.device.startswith(DEVICE))
    check(f"inventory total is exact on {DEVICE}", total == expected, f"{total} vs {expected}")
    opt.zero_grad(set_to_none=True)
    result = step(model, (x, y), nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters()))
    check(
        f"memory.step measures a peak on {DEVICE}",
        result.peak_bytes > 0 and result.forecast is not None,
        f"peak {result.peak_bytes / MiB:.1f} MiB, forecast {result.forecast and result.forecast.formula()}",
    )

    def bare() -> None:
        F.cross_entropy(model(x), y).backward()
        model.zero_grad(set_to_none=True)

    def measured() -> None:
        step(model, (x, y), nn.CrossEntropyLoss())

    t = timed_rounds({"bare": bare, "memory.step": measured}, ROUNDS)
    OVERHEADS.append(("memory.step vs a bare forward+backward", t["bare"], t["memory.step"]))


# -- watch ------------------------------------------------------------------------------------------------
class Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


def watch_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 7 * 7, 10),
    )  # fmt: skip


def watch_data(n: int = 40):
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 1, 28, 28, generator=g)
    out = []
    b = 16 if SMOKE else 64
    for _ in range(n):
        y = torch.randint(0, 10, (b,), generator=g)
        x = centers[y] + 0.5 * torch.randn(b, 1, 28, 28, generator=g)
        out.append((x.to(DEVICE), y.to(DEVICE)))
    return out


def watch_train(model, opt, batches, zero_grad=True, epochs=2, **kw):
    import nbdebug

    with nbdebug.watch(model, opt, **kw) as w:
        for _ in range(epochs):
            for x, y in batches:
                if zero_grad:
                    opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            w.epoch()
    return w


@guarded
def watch_checks() -> None:
    import nbdebug

    batches = watch_data(8 if SMOKE else 40)
    torch.manual_seed(0)
    model = watch_cnn().to(DEVICE)
    w = watch_train(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches)
    serious = [str(f) for f in w.findings if f.severity != "info"]
    check("watch: healthy CNN has no warning/error", not serious, "; ".join(serious))
    check("watch: no internal error", not w.internal_errors, "; ".join(w.internal_errors))
    loss = w.epochs["loss"]
    check("watch: loss falls", loss.iloc[-1] < loss.iloc[0], str(loss.round(3).tolist()))

    torch.manual_seed(0)
    model = watch_cnn().to(DEVICE)
    w = watch_train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, zero_grad=False, epochs=1)
    check("watch: missing zero_grad named at step 2", w.found_at("grad-not-zeroed") == 2, str(w.findings[:1]))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Linear(32, 32), Log(), nn.Linear(32, 10))
    model = model.to(DEVICE)
    w = watch_train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches[:3], epochs=1)
    nf = [f for f in w.findings if f.code == "nonfinite"]
    check("watch: NaN traced to its layer on the device", bool(nf) and nf[0].where == "3", str(nf[:1]))

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    states = []
    for watched in (False, True):
        torch.manual_seed(0)
        model = watch_cnn().to(DEVICE)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with nbdebug.watch(model, opt, every=1) if watched else contextlib.nullcontext():
            for x, y in batches:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        states.append({k: v.detach().cpu() for k, v in model.state_dict().items()})
    same = all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    check("watch: same final weights with and without", same)
    torch.use_deterministic_algorithms(False)

    torch.manual_seed(0)
    model = watch_cnn().to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def loop() -> None:
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

    def under(**kw):
        def run() -> None:
            with nbdebug.watch(model, opt, **kw):
                loop()

        return run

    t = timed_rounds({"bare": loop, "default": under(), "every=1": under(every=1)}, ROUNDS)
    n = len(batches)
    OVERHEADS.append(("watch default vs bare step", t["bare"] / n, t["default"] / n))
    OVERHEADS.append(("watch every=1 vs bare step", t["bare"] / n, t["every=1"] / n))


@guarded
def watch_compiled() -> None:
    """The default backend (inductor; with --cpu-smoke the eager backend, which needs no compiler):
    the same findings as eager, and not one graph break."""
    from torch._dynamo.utils import counters

    backend = "eager" if SMOKE else "inductor"
    batches = watch_data(6 if SMOKE else 30)
    found = []
    for compiled in (False, True):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).to(DEVICE)
        with torch.no_grad():
            net[1].bias.fill_(-10.0)  # dead ReLUs: a finding both must name
        model = torch.compile(net, backend=backend) if compiled else net
        counters.clear()
        w = watch_train(model, torch.optim.Adam(net.parameters(), lr=1e-3), batches, epochs=1, every=2)
        found.append({f.code for f in w.findings})
    breaks = sum(counters["graph_break"].values())
    check(
        f"watch: compiled ({backend}) = eager findings, no graph break",
        found[0] == found[1] and "dead-relu" in found[1] and breaks == 0,
        f"eager {sorted(found[0])}, compiled {sorted(found[1])}, graph breaks {breaks}",
    )


# -- GAN ------------------------------------------------------------------------------------------------
def gan_make():
    from tests import gan_loops as L

    torch.manual_seed(0)
    D, G = L.dcgan_d().to(DEVICE), L.dcgan_g().to(DEVICE)
    return D, G, L.adam(D), L.adam(G)


def gan_loop(D, G, od, og, data, steps: int, zero_g: bool = True) -> None:
    from tests import gan_loops as L

    bce = nn.BCEWithLogitsLoss()
    for real in L.batches(data, 64, steps):
        real = real.to(DEVICE)
        ones, zeros = torch.ones(64, 1, device=DEVICE), torch.zeros(64, 1, device=DEVICE)
        od.zero_grad()
        fake = G(torch.randn(64, 16, device=DEVICE))
        (bce(D(real), ones) + bce(D(fake.detach()), zeros)).backward()
        od.step()
        if zero_g:
            og.zero_grad()
        bce(D(fake), ones).backward()
        og.step()


@guarded
def gan_checks() -> None:
    import nbdebug
    from tests import gan_loops as L

    torch.use_deterministic_algorithms(True)
    data = L.digits()
    try:
        D, G, od, og = gan_make()
        with nbdebug.watch_gan(D, G, od, og) as g:
            gan_loop(D, G, od, og, data, 20 if SMOKE else 200)
        bad = [f"{f.code} [{f.where}]" for f in g.findings if f.severity != "info"]
        check("gan: healthy run silent", not bad and not g.internal_errors, f"{bad} {g.internal_errors}")
        frame = g.frames[-1].samples if g.frames else None
        ok = frame is not None and frame.device.type == "cpu" and tuple(frame.shape) == (64, 1, 8, 8)
        check("gan: frames on the CPU, G's shape", ok, f"{None if frame is None else tuple(frame.shape)}")

        D, G, od, og = gan_make()
        with nbdebug.watch_gan(D, G, od, og) as g:
            gan_loop(D, G, od, og, data, 10, zero_g=False)
        where, at = (
            {f.code: f.where for f in g.findings}.get("grad-not-zeroed"),
            g.found_at("grad-not-zeroed"),
        )
        check(
            "gan: missing optG.zero_grad() named by G step 2",
            where == "g_optimizer" and at is not None and at <= 2,
            f"{where} at {at}",
        )

        states, rngs = [], []
        for watched in (False, True):
            D, G, od, og = gan_make()
            torch.manual_seed(1)
            with nbdebug.watch_gan(D, G, od, og, samples_every=3) if watched else contextlib.nullcontext():
                gan_loop(D, G, od, og, data, 12)
            states.append([{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in (D, G)])
            rngs.append(torch.rand(4, device=DEVICE).cpu())
        same = all(torch.equal(a[k], b[k]) for a, b in zip(*states) for k in a) and torch.equal(*rngs)
        check("gan: same weights, buffers and RNG with and without", same)

        D, G, od, og = gan_make()
        steps = 10 if SMOKE else 40

        def bare() -> None:
            gan_loop(D, G, od, og, data, steps)

        def watched() -> None:
            with nbdebug.watch_gan(D, G, od, og):
                gan_loop(D, G, od, og, data, steps)

        t = timed_rounds({"bare": bare, "watch_gan": watched}, ROUNDS)
        OVERHEADS.append(("watch_gan vs bare iteration", t["bare"] / steps, t["watch_gan"] / steps))
    finally:
        torch.use_deterministic_algorithms(False)


def main(argv: list[str] | None = None) -> int:
    global SMOKE, DEVICE, ROUNDS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="run the same checks on the CPU, small sizes")
    args = ap.parse_args(argv)
    SMOKE = args.cpu_smoke
    DEVICE = "cpu" if SMOKE else "cuda"
    if SMOKE:
        ROUNDS = 1
        torch.set_num_threads(1)  # small CPU models: one thread is faster than an oversubscribed pool
    if not SMOKE and not torch.cuda.is_available():
        print(
            "CANNOT RUN: no CUDA device (torch.cuda.is_available() is False); --cpu-smoke runs it on the CPU"
        )
        return 2
    where = (
        "CPU smoke run"
        if SMOKE
        else f"{torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} device(s)"
    )
    print(f"torch {torch.__version__}, {where}")
    start = time.monotonic()
    print("\n== memory")
    if SMOKE:
        for name in ("no_init_on_read", "inventory_on_cuda", "allocator_figures", "fragmentation",
                     "step_on_cuda", "step_out_of_memory", "watch_on_cuda", "unreachable_on_cuda"):  # fmt: skip
            skip(name, "CUDA only")
    else:
        no_init_on_read()  # must run first: nothing has touched CUDA yet
        for group in (inventory_on_cuda, allocator_figures, fragmentation, step_on_cuda, step_out_of_memory,
                      watch_on_cuda, unreachable_on_cuda):  # fmt: skip
            group()
    memory_step_smoke()
    print("\n== watch")
    watch_checks()
    watch_compiled()
    print("\n== gan")
    gan_checks()
    print("\n== overhead (median of interleaved rounds, synchronized)")
    for what, bare, watched in OVERHEADS:
        print(f"OVERHEAD {what}: {watched * 1e3:.2f} vs {bare * 1e3:.2f} ms = {watched / bare:.2f}x")
    failed = [name for name, ok, _ in RESULTS if not ok]
    print(f"\n{len(RESULTS) - len(failed)} passed, {len(failed)} failed ({time.monotonic() - start:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
