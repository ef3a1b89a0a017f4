"""Cost of nbdebug.predictions / filters / FocalLoss next to the plain PyTorch code they replace.

Each row times a baseline and the nbdebug call side by side in this one process (interleaved, so load
changes hit both), reports the median of several runs and the ratio. Run from the repository root:

    python bench/bench_predictions.py            # full
    python bench/bench_predictions.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import nbdebug
from bench._common import interleaved, machine
from nbdebug._core.plot import figure_png
from nbdebug.predictions.filters_plot import filters_figure


def side_by_side(base: Callable[[], object], ours: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median seconds of the baseline and of nbdebug, interleaved (bench._common.interleaved)."""
    t = interleaved({"base": base, "ours": ours}, repeat=runs)
    return t["base"], t["ours"]


def bare_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """What a user writes by hand: eval, no_grad, softmax, argmax, label and prediction counts."""
    was = model.training
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            probs.append(torch.softmax(model(x[i : i + batch]), 1))
    model.train(was)
    p = torch.cat(probs)
    c = p.shape[1]
    return torch.stack([torch.bincount(y, minlength=c), torch.bincount(p.argmax(1), minlength=c)])


def cnn(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, classes),
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer examples and runs")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    runs = 3 if args.quick else 9
    n = 2000 if args.quick else 10000
    rows = []

    for classes in (10, 1000):
        model = cnn(classes)
        x = torch.randn(n, 1, 28, 28)
        y = torch.randint(0, classes, (n,))
        b, o = side_by_side(
            lambda m=model, x=x, y=y: bare_eval(m, x, y),
            lambda m=model, x=x, y=y: nbdebug.predictions(m, (x, y)),
            runs,
        )
        rows.append((f"predictions, {n} x 28x28, {classes} classes", "eval loop + counts", b, o))

    model = cnn(10)
    x, y = torch.randn(500, 1, 28, 28), torch.randint(0, 10, (500,))
    report = nbdebug.predictions(model, (x, y))
    b, o = side_by_side(lambda: bare_eval(model, x, y), lambda: report._repr_mimebundle_(), runs)
    rows.append(("report HTML (frequencies + confusion PNG)", "eval loop, 500 ex.", b, o))

    big = nn.Conv2d(3, 64, 7)
    net = nn.Sequential(big, nn.ReLU(), nn.Conv2d(64, 8, 3))
    img = torch.randn(1, 3, 64, 64)

    def hooked_forward() -> torch.Tensor:
        out = []
        h = big.register_forward_hook(lambda m, i, o: out.append(o.detach()))
        with torch.no_grad():
            net(img)
        h.remove()
        return out[0]

    b, o = side_by_side(hooked_forward, lambda: nbdebug.filters(net, data=img), runs * 5)
    rows.append(("filters(data=) feature maps, Conv2d(3, 64, 7)", "forward + hook", b, o))
    view = nbdebug.filters(nn.Sequential(big))
    b, o = side_by_side(lambda: view.images(), lambda: figure_png(filters_figure(view)), runs)
    rows.append(("filter grid PNG, 64 RGB filters", "images() arrays", b, o))

    logits = torch.randn(4096, 100, requires_grad=True)
    target = torch.randint(0, 100, (4096,))
    ce, focal = nn.CrossEntropyLoss(), nbdebug.FocalLoss(gamma=2.0)

    def step(loss_fn: nn.Module) -> Callable[[], None]:
        def run() -> None:
            loss_fn(logits, target).backward()
            logits.grad = None

        return run

    b, o = side_by_side(step(ce), step(focal), runs * 3)
    rows.append(("FocalLoss fwd+bwd, 4096 x 100", "CrossEntropyLoss", b, o))

    print(f"{machine()}; threads=1; median of {runs} interleaved runs")
    print(f"{'case':<45} {'baseline':<20} {'base ms':>9} {'nbdebug ms':>11} {'ratio':>7}")
    for case, base_name, b, o in rows:
        print(f"{case:<45} {base_name:<20} {b * 1e3:>9.2f} {o * 1e3:>11.2f} {o / b:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
