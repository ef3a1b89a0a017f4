"""Benchmark the sanity checks: overfit speed, the live panel's cost, check and gradcheck timings.

Everything is measured side by side in one process, runs interleaved, medians reported:
- overfit: a small CNN on 20 digits to loss < 0.01 (time, epochs), with 1 thread and the default;
- panel overhead: the same fixed number of epochs with and without the live panel as callback;
- check: one forward/backward with hooks vs the bare forward/backward it wraps;
- gradcheck: nbdebug's sampled float64 check (inputs + parameters) vs torch.autograd.gradcheck
  (full Jacobian, inputs only) on the same CNN and images.

    python bench/bench_sanity.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import nbdebug
from nbdebug.sanity.panel import OverfitPanel


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def data():
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    return (x - x.mean()) / x.std(), torch.tensor(d.target)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    x, y = data()
    default_threads = torch.get_num_threads()
    rows: list[tuple[str, str, str]] = []

    # 1. overfit to < 0.01 on 20 digits
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), target=0.01)  # warm-up
        times, epochs = [], []
        for i in range(reps):
            torch.manual_seed(i)
            r = nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), target=0.01)
            assert r.passed, r
            times.append(r.elapsed)
            epochs.append(r.epochs)
        rows.append(
            (
                f"overfit CNN, 20 digits, loss < 0.01 ({threads} thread{'s' if threads > 1 else ''})",
                f"{statistics.median(times):.3f} s",
                f"{statistics.median(epochs):.0f} epochs, Adam 3e-3",
            )
        )
    torch.set_num_threads(1)

    # 2. the live panel's cost on a fixed number of epochs (target < 0: never stops early)
    epochs = 600 if args.quick else 1500
    bare, live, redraws = [], [], []
    for _ in range(reps):
        r = nbdebug.overfit(
            cnn(), (x, y), nn.CrossEntropyLoss(), target=-1, max_epochs=epochs, time_budget=1e9
        )
        bare.append(r.elapsed)
        panel = OverfitPanel()
        r = nbdebug.overfit(
            cnn(), (x, y), nn.CrossEntropyLoss(), target=-1, max_epochs=epochs, time_budget=1e9,
            callback=panel.update, should_stop=panel.should_stop,
        )  # fmt: skip
        live.append(r.elapsed)
        redraws.append(panel.redraws - 1)  # minus the final figure, drawn after the loop
    b, lv = statistics.median(bare), statistics.median(live)
    rows.append(
        (
            f"overfit {epochs} epochs: bare loop vs with live panel",
            f"{b:.3f} s vs {lv:.3f} s",
            f"overhead {100 * (lv - b) / b:+.1f}% ({statistics.median(redraws):.0f} live redraws)",
        )
    )

    # 3. check vs the bare forward/backward it wraps
    model, batch = cnn(), (x[:64], y[:64])

    def bare_step():
        model.zero_grad()
        F.cross_entropy(model(batch[0]), batch[1]).backward()

    nbdebug.check(model, batch, nn.CrossEntropyLoss())
    t_check = statistics.median(
        timed(lambda: nbdebug.check(model, batch, nn.CrossEntropyLoss())) for _ in range(reps)
    )
    t_bare = statistics.median(timed(bare_step) for _ in range(reps))
    rows.append(
        ("check (batch 64) vs bare forward+backward", f"{t_check * 1e3:.1f} ms vs {t_bare * 1e3:.1f} ms", "")
    )

    # 4. gradcheck: sampled (inputs + all parameters) vs torch's full-Jacobian check (inputs only)
    imgs = x[:4]
    ours = statistics.median(timed(lambda: nbdebug.gradcheck(model, imgs)) for _ in range(max(1, reps // 2)))
    m64 = copy.deepcopy(model).double()
    xin = imgs.double().requires_grad_()
    verdicts = []

    def torch_check():
        verdicts.append(torch.autograd.gradcheck(m64, (xin,), eps=1e-6, atol=1e-5, raise_exception=False))

    full = statistics.median(timed(torch_check) for _ in range(max(1, reps // 2)))
    res = nbdebug.gradcheck(model, imgs)
    rows.append(
        (
            "gradcheck CNN, 4 images: nbdebug (20 entries/tensor, 7 tensors) vs torch.autograd.gradcheck (input only)",
            f"{ours:.2f} s vs {full:.2f} s",
            f"nbdebug passed={res.passed} (max rel. error {res.max_error:.1e}, {int(res.rows.kinks.sum())} kink "
            f"entries set aside); torch passed={verdicts[-1]}",
        )
    )

    print(
        f"machine: {os.cpu_count()} CPUs, {cpu_model()}; torch {torch.__version__}; default threads {default_threads}"
    )
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")


if __name__ == "__main__":
    main()
