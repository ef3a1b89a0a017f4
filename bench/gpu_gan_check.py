"""GPU check for `nbdebug.watch_gan` (GPU-only paths: the fixed noise drawn by a CUDA generator, the
CUDA RNG restored around sampling, real/fake classification by CUDA storage, diversity on device).

Checks, on the digits DCGAN pair of the tests moved to the device:
  1. a healthy run (200 iterations) yields no warning or error;
  2. a missing optG.zero_grad() is named (grad-not-zeroed on g_optimizer) by G step 2;
  3. the final weights and BatchNorm buffers are identical with and without watch_gan (deterministic
     algorithms on), and the CUDA RNG stream is where it would be;
  4. frames come back as CPU tensors of G's output shape;
and prints the ms per iteration bare vs watched (synchronized timing, median of 5 interleaved rounds).
Exit 0: all passed, 1: a check failed, 2: no CUDA. `--device cpu` runs the same checks here.

Usage: python bench/gpu_gan_check.py [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import nbdebug
from tests import gan_loops as L


def make(device: str):
    torch.manual_seed(0)
    D, G = L.dcgan_d().to(device), L.dcgan_g().to(device)
    return D, G, L.adam(D), L.adam(G)


def loop(D, G, od, og, data, steps: int, device: str, zero_g: bool = True) -> None:
    bce = torch.nn.BCEWithLogitsLoss()
    for real in L.batches(data, 64, steps):
        real = real.to(device)
        ones, zeros = torch.ones(64, 1, device=device), torch.zeros(64, 1, device=device)
        od.zero_grad()
        fake = G(torch.randn(64, 16, device=device))
        (bce(D(real), ones) + bce(D(fake.detach()), zeros)).backward()
        od.step()
        if zero_g:
            og.zero_grad()
        bce(D(fake), ones).backward()
        og.step()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    device = ap.parse_args().device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    torch.use_deterministic_algorithms(True)
    data = L.digits()
    results: list[tuple[str, bool, str]] = []

    D, G, od, og = make(device)
    with nbdebug.watch_gan(D, G, od, og) as g:
        loop(D, G, od, og, data, 200, device)
    bad = [f"{f.code} [{f.where}]" for f in g.findings if f.severity != "info"]
    results.append(("healthy run silent", not bad and not g.internal_errors, f"{bad} {g.internal_errors}"))
    frame = g.frames[-1].samples if g.frames else None
    ok = frame is not None and frame.device.type == "cpu" and tuple(frame.shape) == (64, 1, 8, 8)
    results.append(
        ("frames on CPU, G's shape", ok, f"{None if frame is None else (frame.device, tuple(frame.shape))}")
    )

    D, G, od, og = make(device)
    with nbdebug.watch_gan(D, G, od, og) as g:
        loop(D, G, od, og, data, 10, device, zero_g=False)
    where, at = {f.code: f.where for f in g.findings}.get("grad-not-zeroed"), g.found_at("grad-not-zeroed")
    results.append(
        (
            "missing optG.zero_grad() named by step 2",
            where == "g_optimizer" and at is not None and at <= 2,
            f"{where} at {at}",
        )
    )

    states, rngs = [], []
    for watched in (False, True):
        D, G, od, og = make(device)
        torch.manual_seed(1)
        if watched:
            with nbdebug.watch_gan(D, G, od, og, samples_every=3):
                loop(D, G, od, og, data, 12, device)
        else:
            loop(D, G, od, og, data, 12, device)
        states.append([{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in (D, G)])
        rngs.append(torch.rand(4, device=device).cpu())
    same = all(torch.equal(a[k], b[k]) for a, b in zip(*states) for k in a) and torch.equal(*rngs)
    results.append(("same weights, buffers and RNG with and without", same, ""))

    D, G, od, og = make(device)
    times: dict[str, list[float]] = {"bare": [], "watch_gan": []}
    for _ in range(5):
        for variant in times:
            sync(device)
            t0 = time.perf_counter()
            if variant == "bare":
                loop(D, G, od, og, data, 40, device)
            else:
                with nbdebug.watch_gan(D, G, od, og):
                    loop(D, G, od, og, data, 40, device)
            sync(device)
            times[variant].append((time.perf_counter() - t0) / 40)
    bare, watched = (statistics.median(v) for v in times.values())
    print(
        f"device {device}: bare {bare * 1e3:.2f} ms/iteration, watch_gan {watched * 1e3:.2f} ({watched / bare:.2f}x)"
    )
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'} {name} {detail if not ok else ''}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
