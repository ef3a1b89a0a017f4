"""nbdebug.search: what it costs, and whether the notes' advice (random search, log scale) pays off.

1. Overhead: the same 12 trials of a small MLP on load_digits (one epoch each), as a bare Python loop
   over the same parameters, through `nbdebug.search`, and through `nbdebug.search` with the live panel
   observing (tables and throttled scatter PNGs rendered, no frontend). Medians of interleaved runs.
2. Random vs grid at equal budget (Bergstra & Bengio 2012): a 4-parameter objective where only 2
   parameters matter, 16 trials (grid 2x2x2x2 over the same log ranges), optimum placed at random in each
   of many repetitions; median regret (best possible score minus best found).
3. Log vs linear scale: the same random search for a learning rate whose optimum is 3e-4 in
   [1e-5, 1e-1], drawn log-uniformly vs uniformly; median |log10(best lr / 3e-4)|.

Run: python bench/bench_search.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nbdebug
from bench._common import interleaved, machine
from nbdebug.search.space import draw


def digits_train_fn():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-3)
    y = torch.tensor(d.target)
    tr, va = slice(0, 1200), slice(1200, None)

    def train(lr, hidden):
        model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        for idx in torch.randperm(1200).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[tr][idx]), y[tr][idx]).backward()
            opt.step()
        with torch.no_grad():
            return (model(x[va]).argmax(1) == y[va]).float().mean().item()

    return train


def overhead(repeat: int) -> dict[str, float]:
    from nbdebug.search.panel import SearchPanel

    train = digits_train_fn()
    space = {"lr": nbdebug.loguniform(1e-3, 1.0), "hidden": nbdebug.intlog(16, 128)}
    params = draw(space, 12, seed=0)

    def bare():
        for i, p in enumerate(params):
            torch.manual_seed(i)
            train(**p)

    return interleaved(
        {
            "bare loop": bare,
            "nbdebug.search": lambda: nbdebug.search(train, space, trials=12),
            "search + live panel": lambda: nbdebug.search(train, space, trials=12, observers=[SearchPanel()]),
        },
        repeat=repeat,
    )


def objective(opt: np.ndarray):
    """Only lr and wd matter (a bowl in log space); width and dropout are ignored."""

    def f(lr, wd, width, dropout):
        return -((math.log10(lr) - opt[0]) ** 2) - (math.log10(wd) - opt[1]) ** 2

    return f


SPACE = {
    "lr": nbdebug.loguniform(1e-5, 1e-1),
    "wd": nbdebug.loguniform(1e-6, 1e-2),
    "width": nbdebug.intlog(16, 512),
    "dropout": nbdebug.uniform(0.0, 0.5),
}


def random_vs_grid(reps: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    grid_axes = {
        "lr": [10**-4, 10**-2],  # 2 values per axis at the quartiles of the log ranges: 2^4 = 16 trials
        "wd": [10**-5, 10**-3],
        "width": [32, 256],
        "dropout": [0.125, 0.375],
    }
    grid = [dict(zip(grid_axes, v)) for v in itertools.product(*grid_axes.values())]
    regrets = {"random (16 trials)": [], "grid 2^4 (16 trials)": []}
    for rep in range(reps):
        opt = np.array([rng.uniform(-5, -1), rng.uniform(-6, -2)])
        f = objective(opt)
        rand = nbdebug.search(f, SPACE, trials=16, seed=rep, seed_trials=False)
        regrets["random (16 trials)"].append(-rand.best.score)
        regrets["grid 2^4 (16 trials)"].append(-max(f(**p) for p in grid))
    return {k: statistics.median(v) for k, v in regrets.items()}


def log_vs_linear(reps: int) -> dict[str, float]:
    def f(lr):
        return -((math.log10(lr) - math.log10(3e-4)) ** 2)

    err = {"loguniform(1e-5, 1e-1)": [], "uniform(1e-5, 1e-1)": []}
    for rep in range(reps):
        for name, dist in (
            ("loguniform(1e-5, 1e-1)", nbdebug.loguniform(1e-5, 1e-1)),
            ("uniform(1e-5, 1e-1)", nbdebug.uniform(1e-5, 1e-1)),
        ):
            r = nbdebug.search(f, {"lr": dist}, trials=20, seed=rep, seed_trials=False)
            err[name].append(abs(math.log10(r.best.params["lr"] / 3e-4)))
    return {k: statistics.median(v) for k, v in err.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(machine())
    times = overhead(repeat=3 if args.quick else 7)
    base = times["bare loop"]
    print("\n1. overhead, 12 trials of a 1-epoch MLP on load_digits (median of interleaved runs)")
    print(f"{'':24s}{'seconds':>10s}{'ratio':>8s}")
    for k, v in times.items():
        print(f"{k:24s}{v:10.3f}{v / base:8.2f}x")
    extra = times["search + live panel"] - times["nbdebug.search"]
    print(f"the panel adds {extra:.2f} s per search: tables per trial, one scatter PNG per second, findings")
    reps = 60 if args.quick else 300
    print(f"\n2. median regret over {reps} random optima, 4 parameters of which 2 matter (lower is better)")
    for k, v in random_vs_grid(reps).items():
        print(f"{k:24s}{v:10.3f}")
    reps = 40 if args.quick else 200
    print(f"\n3. median |log10(best lr / 3e-4)| over {reps} seeds, 20 trials (lower is better)")
    for k, v in log_vs_linear(reps).items():
        print(f"{k:24s}{v:10.3f}")


if __name__ == "__main__":
    main()
