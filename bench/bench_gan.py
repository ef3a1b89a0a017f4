"""Overhead of `nbdebug.watch_gan` on a GAN training iteration, measured side by side in one process.

Variants, each timed over the same iterations (one D step on real + detached fake, one G step) of the
same DCGAN-style pair, CPU, one thread:
  bare            the user's loop alone
  hand logging    what the PyTorch DCGAN example logs by hand: errD, errG, D(x), D(G(z)) before and
                  after D's update as .item() every iteration, and G(fixed_noise) every 25 iterations
  watch_gan       nbdebug.watch_gan(D, G, opt_d, opt_g) with its defaults (per-layer statistics every
                  10 steps, sample grid + diversity every 25 G steps, diagnosis live)
  watch_gan dense every=1, samples_every=1: per-layer statistics, samples and diversity every step
Two models: `digits` (8x8, the tests' DCGAN) and `dcgan32` (32x32x3, channels 128-64-32, nz 64).
Rounds interleave the variants; the table gives the median time per iteration and its ratio to bare.
A second part reports how many G steps the missing `optG.zero_grad()` takes to be named, and that
the memory kept stays flat (frames are thinned to `max_frames`) over a long run.

Usage: python bench/bench_gan.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import nbdebug  # noqa: E402
from tests import gan_loops as L  # noqa: E402


def dcgan32(nz: int = 64) -> tuple[nn.Module, nn.Module]:
    G = nn.Sequential(
        nn.Linear(nz, 128 * 4 * 4), nn.Unflatten(1, (128, 4, 4)), nn.BatchNorm2d(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Tanh(),
    )  # fmt: skip
    D = nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(128 * 4 * 4, 1),
    )  # fmt: skip
    return D, G


def setup(name: str):
    torch.manual_seed(0)
    if name == "digits":
        D, G, nz = L.dcgan_d(), L.dcgan_g(), 16
        data = L.digits()
    else:
        (D, G), nz = dcgan32(), 64
        data = torch.rand(512, 3, 32, 32) * 2 - 1
    return D, G, L.adam(D), L.adam(G), data, nz


def run(D, G, od, og, batches, nz: int, variant: str) -> float:
    bce = nn.BCEWithLogitsLoss()
    fixed = torch.randn(64, nz)
    log: list = []

    def loop() -> None:
        for i, real in enumerate(batches):
            b = real.shape[0]
            ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
            od.zero_grad()
            fake = G(torch.randn(b, nz))
            out_real, out_fake = D(real), D(fake.detach())
            err_d = bce(out_real, ones) + bce(out_fake, zeros)
            err_d.backward()
            od.step()
            og.zero_grad()
            out = D(fake)
            err_g = bce(out, ones)
            err_g.backward()
            og.step()
            if variant == "hand logging":
                log.append(
                    (err_d.item(), err_g.item(), torch.sigmoid(out_real).mean().item(),
                     torch.sigmoid(out_fake).mean().item(), torch.sigmoid(out).mean().item())
                )  # fmt: skip
                if i % 25 == 0:
                    with torch.no_grad():
                        log.append(G(fixed).detach().cpu())

    kw = {"watch_gan": {}, "watch_gan dense": {"every": 1, "samples_every": 1}}.get(variant)
    if kw is None:
        t0 = time.perf_counter()
        loop()
        return (time.perf_counter() - t0) / len(batches)
    with nbdebug.watch_gan(D, G, od, og, **kw) as g:
        t0 = time.perf_counter()
        loop()
        t = time.perf_counter() - t0
    assert not g.internal_errors, g.internal_errors
    return t / len(batches)


VARIANTS = ["bare", "hand logging", "watch_gan", "watch_gan dense"]


def overhead(name: str, rounds: int, steps: int) -> list[tuple[str, float, float]]:
    D, G, od, og, data, nz = setup(name)
    batches = list(L.batches(data, 64, steps))
    for v in VARIANTS:  # warm-up
        run(D, G, od, og, batches[:3], nz, v)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for v in VARIANTS:
            times[v].append(run(D, G, od, og, batches, nz, v))
    bare = statistics.median(times["bare"])
    return [(v, statistics.median(times[v]), statistics.median(times[v]) / bare) for v in VARIANTS]


def detection() -> tuple[int | None, int | None]:
    """G steps until grad-not-zeroed and gan-d-collapse are named in the notes' bug (digits DCGAN)."""
    torch.manual_seed(0)
    D, G = L.dcgan_d(sigmoid=True), L.dcgan_g()
    od, og = L.adam(D), L.adam(G)
    with nbdebug.watch_gan(D, G, od, og) as g:
        L.train(D, G, od, og, L.digits(), steps=150, nz=16, zero_g=False, probabilities=True)
    return g.found_at("grad-not-zeroed"), g.found_at("gan-d-collapse")


def memory(steps: int) -> list[tuple[int, int, int, float]]:
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    od, og = L.adam(D), L.adam(G)
    marks = {steps // 10, steps}
    rows = []
    tracemalloc.start()
    bce = nn.BCEWithLogitsLoss()
    x = L.mixture()
    with nbdebug.watch_gan(D, G, od, og, samples_every=5) as g:
        for i, real in enumerate(L.batches(x, 64, steps), 1):
            od.zero_grad()
            fake = G(torch.randn(64, 8))
            (bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))).backward()
            od.step()
            og.zero_grad()
            bce(D(fake), torch.ones(64, 1)).backward()
            og.step()
            if i in marks:
                gc.collect()
                with warnings.catch_warnings():  # isinstance() on torch's deprecated module attributes
                    warnings.simplefilter("ignore")
                    tensors = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
                rows.append((i, len(g.frames), tensors, tracemalloc.get_traced_memory()[0] / 1e6))
    tracemalloc.stop()
    return rows


def machine() -> str:
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, nproc {os.cpu_count()}, Python {platform.python_version()}, torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps (under a minute)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rounds, steps = (3, 30) if args.quick else (9, 40)
    print(f"machine: {machine()}; one torch thread; {rounds} rounds x {steps} iterations, medians\n")
    for name in ("digits", "dcgan32"):
        print(f"{name}: ms per iteration (D step + G step, batch 64)")
        print(f"  {'variant':<16} {'ms/iter':>9} {'x bare':>7}")
        for v, t, r in overhead(name, rounds, steps):
            print(f"  {v:<16} {t * 1e3:>9.2f} {r:>7.2f}")
        print()
    g_at, d_at = detection()
    print(
        f"missing optG.zero_grad() (digits DCGAN): grad-not-zeroed named at G step {g_at}, gan-d-collapse at {d_at}\n"
    )
    n = 2000 if args.quick else 10000
    print(f"memory over {n} iterations (ring GAN, samples every 5 G steps, frames kept <= 40):")
    print(f"  {'iteration':>9} {'frames':>7} {'live tensors':>13} {'py heap MB':>11}")
    for i, frames, tensors, mb in memory(n):
        print(f"  {i:>9} {frames:>7} {tensors:>13} {mb:>11.2f}")


if __name__ == "__main__":
    main()
