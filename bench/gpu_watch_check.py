"""CUDA check for `nbdebug.watch`, prepared for a GPU machine (the build machine has none).

Runs the watch's device paths and prints PASS/FAIL lines: a healthy CNN on the GPU stays silent; a
missing zero_grad() is named on step 2; NaN from a layer is traced to that layer by the forward replay
on the device; final weights are the same with and without the watch (deterministic algorithms); and
the overhead of the default and of every-step statistics against the bare step (synchronized timing).
Exit code: 0 all passed, 1 a failure, 2 no CUDA. `--device cpu` runs the same checks on CPU.

Usage: python bench/gpu_watch_check.py [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nbdebug

FAILED: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        FAILED.append(name)


class Log(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x)


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 7 * 7, 10),
    )  # fmt: skip


def data(device: str, n: int = 40):
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 1, 28, 28, generator=g)
    out = []
    for _ in range(n):
        y = torch.randint(0, 10, (64,), generator=g)
        x = centers[y] + 0.5 * torch.randn(64, 1, 28, 28, generator=g)
        out.append((x.to(device), y.to(device)))
    return out


def train(model, opt, batches, zero_grad=True, epochs=2, **kw):
    with nbdebug.watch(model, opt, **kw) as w:
        for _ in range(epochs):
            for x, y in batches:
                if zero_grad:
                    opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            w.epoch()
    return w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    dev = ap.parse_args().device
    if dev == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    batches = data(dev)

    torch.manual_seed(0)
    model = cnn().to(dev)
    w = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches)
    serious = [str(f) for f in w.findings if f.severity != "info"]
    check("healthy CNN: no warning/error", not serious, "; ".join(serious))
    check("healthy CNN: no internal error", not w.internal_errors, "; ".join(w.internal_errors))
    check(
        "loss falls",
        w.epochs["loss"].iloc[-1] < w.epochs["loss"].iloc[0],
        str(w.epochs["loss"].round(3).tolist()),
    )

    torch.manual_seed(0)
    model = cnn().to(dev)
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, zero_grad=False, epochs=1)
    check("missing zero_grad named at step 2", w.found_at("grad-not-zeroed") == 2, str(w.findings[:1]))

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Linear(32, 32), Log(), nn.Linear(32, 10)).to(
        dev
    )
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.01), batches[:3], epochs=1)
    nf = [f for f in w.findings if f.code == "nonfinite"]
    check("NaN traced to its layer on the device", bool(nf) and nf[0].where == "3", str(nf[:1]))

    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    states = []
    for watched in (False, True):
        torch.manual_seed(0)
        model = cnn().to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        ctx = nbdebug.watch(model, opt, every=1) if watched else contextlib.nullcontext()
        with ctx:
            for x, y in batches:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        states.append({k: v.detach().cpu() for k, v in model.state_dict().items()})
    same = all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    check("same final weights with and without watch", same)
    torch.use_deterministic_algorithms(False)

    torch.manual_seed(0)
    model = cnn().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def sync() -> None:
        if dev == "cuda":
            torch.cuda.synchronize()

    def timed(variant: str) -> float:
        ctx = {
            "default": lambda: nbdebug.watch(model, opt),
            "full": lambda: nbdebug.watch(model, opt, every=1),
        }
        run = ctx[variant]() if variant in ctx else None
        if run is not None:
            run.__enter__()
        sync()
        t0 = time.perf_counter()
        for x, y in batches:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        sync()
        t = (time.perf_counter() - t0) / len(batches)
        if run is not None:
            run.__exit__(None, None, None)
        return t

    for v in ("bare", "default", "full"):
        timed(v)
    times: dict[str, list[float]] = {"bare": [], "default": [], "full": []}
    for _ in range(5):
        for v in times:
            times[v].append(timed(v))
    bare = statistics.median(times["bare"])
    for v in ("default", "full"):
        r = statistics.median(times[v]) / bare
        print(
            f"INFO overhead {v}: {statistics.median(times[v]) * 1e3:.3f} ms/step vs {bare * 1e3:.3f} bare = {r:.2f}x"
        )
    print("all passed" if not FAILED else f"{len(FAILED)} failed: {FAILED}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    raise SystemExit(main())
