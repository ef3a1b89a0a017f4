"""memory(): scan speed against pytorch_memlab's MemReporter on the same objects, with the same total.

1. A namespace holding 10,000 tensors among about 1,000,000 other Python objects (records, a vocabulary,
   a loss history, small user objects) plus a model and its SGD-momentum state. Median of interleaved
   runs of `nbdebug.memory(namespace=ns)` and MemReporter (`collect_tensor()` + `get_stats()`, no
   printing). Targets: nbdebug <= 0.5 s and >= 5x faster; both totals equal. Every tensor is a multiple
   of 512 bytes because MemReporter rounds each tensor up to 512 B (the allocator's block size), so the
   totals are comparable exactly. MemReporter walks the whole garbage-collected heap, nbdebug only what
   the namespace reaches, so the ratio depends on the process: it is measured three times, in a bare
   process (torch only), in a kernel-like one (IPython shell, ipykernel, ipywidgets, pandas, matplotlib
   and scikit-learn imported, as in a notebook that uses nbdebug), each in a fresh subprocess, and inside
   a real ipykernel started with jupyter_client (skipped when it is not installed).
2. The same scan over the shapes data takes in notebooks: a list of tensors, (x, y) pairs, (x, label)
   pairs, dict records, and 50k user objects with one tensor among them (nbdebug alone).
3. `memory.step` on the notebook's conv net (batch 256): wall time next to a bare forward + backward,
   and the forecast's error at the measured batch.

Run: python bench/bench_memory.py [--quick]. MemReporter comes from `pip install pytorch-memlab`; without
it part 1 times nbdebug alone and says so.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import interleaved, machine
from nbdebug._core.units import fmt_bytes
from nbdebug.memory.api import memory
from nbdebug.memory.step import step


class Sample:
    def __init__(self, i: int) -> None:
        self.index = i
        self.tags = ["a", "b"]


def build_namespace(n_tensors: int = 10_000, n_objects: int = 1_000_000) -> tuple[dict, int]:
    """A notebook-like namespace; returns it and the number of Python objects it holds besides tensors."""
    model = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 128)).sum().backward()
    opt.step()
    per = n_objects // 10
    records = [{"id": i, "text": f"row {i}", "score": i * 0.5} for i in range(per)]  # 4 objects each
    vocab = {f"w{i}": i + 1000 for i in range(per)}  # 2 objects each
    history = [i * 0.1 for i in range(per * 2)]  # 1 each
    samples = [Sample(i) for i in range(per // 2)]  # object + __dict__ + list + int: 4 each
    cache = [[torch.zeros(128) for _ in range(10)] for _ in range(n_tensors // 10)]  # 512 B each
    ns = {"model": model, "opt": opt, "records": records, "vocab": vocab, "history": history,
          "samples": samples, "cache": cache}  # fmt: skip
    count = 4 * len(records) + 2 * len(vocab) + len(history) + 4 * len(samples) + len(cache)
    return ns, count


def memlab_total(model: nn.Module) -> int:
    from pytorch_memlab import MemReporter

    reporter = MemReporter(model)
    reporter.collect_tensor()
    reporter.get_stats()
    return sum(mem for stats in reporter.device_tensor_stat.values() for *_, mem in stats)


def unique_storage_bytes(ns: dict) -> int:
    """Independent reference: each distinct storage's nbytes() once."""
    model, opt = ns["model"], ns["opt"]
    tensors = [*model.parameters(), *(p.grad for p in model.parameters())]
    tensors += [v for s in opt.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    tensors += [t for row in ns["cache"] for t in row]
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


KERNEL_LIKE = """
import IPython, ipykernel.ipkernel, ipywidgets, pandas, matplotlib.pyplot, sklearn.datasets
from IPython.core.interactiveshell import InteractiveShell
InteractiveShell.instance()
"""


def bench_scan(repeat: int, kernel_like: bool, label: str = "") -> None:
    if kernel_like:
        exec(KERNEL_LIKE, {})
    label = label or ("kernel-like" if kernel_like else "bare")
    print(f"\n--- {label} process: {len(gc.get_objects()):,} objects on the gc heap")
    ns, n_objects = build_namespace()
    print(f"namespace: {sum(len(r) for r in ns['cache'])} tensors among ~{n_objects:,} other Python objects")
    report = memory(namespace=ns, gpu=False)
    reference = unique_storage_bytes(ns)
    print(f"nbdebug total {report.total_bytes:,} B; sum of unique storages' nbytes() {reference:,} B; "
          f"equal: {report.total_bytes == reference}")  # fmt: skip
    fns = {
        "nbdebug.memory": lambda: memory(namespace=ns, gpu=False).total_bytes,
        # also sweeps the gc heap for tensors no name reaches, as MemReporter does (not a target)
        "  with all=True": lambda: memory(namespace=ns, gpu=False, all=True).total_bytes,
    }
    try:
        import pytorch_memlab  # noqa: F401
    except ImportError:
        print("pytorch_memlab not installed (pip install pytorch-memlab): timing nbdebug alone")
    else:
        total = memlab_total(ns["model"])
        # pytorch_memlab 0.3.2 multiplies untyped_storage().size() - bytes since torch 2.0 - by
        # element_size again: every float32 tensor is counted 4x. All tensors here are float32.
        print(f"MemReporter total {total:,} B = 4 x {total // 4:,} B (it counts float32 storages 4x); "
              f"/4 equal to nbdebug's: {total // 4 == report.total_bytes}")  # fmt: skip
        fns["MemReporter"] = lambda: memlab_total(ns["model"])
    gc.collect()
    times = interleaved(fns, repeat=repeat)
    print(f"\n{'scan':<16}{'median s':>10}{'vs nbdebug':>12}")
    for name, t in times.items():
        print(f"{name:<16}{t:>10.3f}{t / times['nbdebug.memory']:>11.1f}x")
    ok = times["nbdebug.memory"] <= 0.5
    print(f"target nbdebug <= 0.5 s: {'met' if ok else 'MISSED'}")
    if "MemReporter" in times:
        speedup = times["MemReporter"] / times["nbdebug.memory"]
        print(f"target >= 5x faster than MemReporter: {'met' if speedup >= 5 else 'MISSED'} ({speedup:.1f}x)")


def scan_in_kernel(quick: bool) -> None:
    """Part 1 inside a real ipykernel (jupyter_client from the notebook extra), where %nn_mem runs."""
    try:
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        print("\njupyter_client not installed: the in-kernel scenario is skipped")
        return
    root = str(Path(__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from bench.bench_memory import bench_scan\n"
        f"bench_scan({3 if quick else 7}, kernel_like=False, label='ipykernel')\n"
    )
    km, kc = start_new_kernel(kernel_name="python3")
    try:

        def show(msg: dict) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                print(msg["content"]["text"], end="")
            elif msg["msg_type"] == "error":
                print("\n".join(msg["content"]["traceback"]))

        reply = kc.execute_interactive(code, timeout=600, output_hook=show)
        if reply["content"]["status"] != "ok":
            raise RuntimeError("the in-kernel scan failed (traceback above)")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def bench_patterns(repeat: int) -> None:
    """How data is held in notebooks: the scan's time per shape of container (nbdebug alone)."""
    torch.manual_seed(0)
    n = 10_000
    with_one = [Sample(i) for i in range(50_000)]
    with_one[123].embedding = torch.zeros(8)
    keyed = {f"id{i}": Sample(i) for i in range(50_000)}
    keyed["id777"].embedding = torch.zeros(8)
    cases = {
        "10k tensors in a list": [torch.zeros(4) for _ in range(n)],
        "5k (x, y) tensor pairs": [(torch.zeros(4), torch.zeros(())) for _ in range(n // 2)],
        "10k (x, int label) pairs": [(torch.zeros(4), i) for i in range(n)],
        "10k {'x': t, 'y': int} dicts": [{"x": torch.zeros(4), "y": i} for i in range(n)],
        "50k objects, 1 tensor (list)": with_one,
        "50k objects, 1 tensor (dict)": keyed,
    }
    times = interleaved(
        {k: (lambda v=v: memory(namespace={"data": v}, gpu=False)) for k, v in cases.items()}, repeat
    )
    print(f"\n{'data held as':<32}{'median ms':>10}")
    for name, t in times.items():
        print(f"{name:<32}{t * 1000:>10.1f}")


def bench_step(repeat: int) -> None:
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    x, y = torch.randn(256, 1, 8, 8), torch.randint(0, 10, (256,))
    loss_fn = nn.CrossEntropyLoss()

    def bare() -> None:
        loss_fn(cnn(x), y).backward()
        cnn.zero_grad(set_to_none=True)

    result = step(cnn, (x, y), loss_fn, budget="12GB")
    times = interleaved({"forward+backward": bare, "memory.step": lambda: step(cnn, (x, y), loss_fn, budget="12GB")},
                        repeat=repeat)  # fmt: skip
    print(f"\n{'conv net, batch 256':<22}{'median s':>10}")
    for name, t in times.items():
        print(f"{name:<22}{t:>10.3f}")
    print(f"memory.step / bare step: {times['memory.step'] / times['forward+backward']:.1f}x "
          "(one real step + two meta fits + the meta check of the largest batch)")  # fmt: skip
    print(f"{result.forecast.formula()}; forecast error at N=256: {result.forecast_error:+.1%}; "
          f"largest batch in 12 GiB: {result.max_batch} (peak {fmt_bytes(result.verified[1])} on meta)")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--scan", choices=["bare", "kernel-like"], help=argparse.SUPPRESS)  # subprocess mode
    args = ap.parse_args()
    repeat = 3 if args.quick else 7
    if args.scan:
        bench_scan(repeat, kernel_like=args.scan == "kernel-like")
        return 0
    print(machine())
    start = time.perf_counter()
    for mode in ("bare", "kernel-like"):  # fresh processes: the heap is part of what is measured
        extra = ["--quick"] if args.quick else []
        subprocess.run([sys.executable, __file__, "--scan", mode, *extra], check=True)
    scan_in_kernel(args.quick)
    bench_patterns(repeat)
    bench_step(repeat)
    print(f"\n(bench ran in {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
