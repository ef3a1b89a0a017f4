"""mcfly-style 1D-CNN activity classifier trained on windows stored class by class, without shuffling: it
ends each epoch on the last activity and predicts that activity for almost everything.

Source: NLeSC/mcfly issue #322, "We should shuffle the data by default"
https://github.com/NLeSC/mcfly/issues/322
"Before training any model, we should shuffle the data. This is best practice and failing to do so can
totally impair training." The program: a small mcfly-like CNN (Conv1d-BatchNorm-ReLU blocks, global
average pooling, dense) on seeded synthetic 3-axis accelerometer windows of 4 activities, stored in class
order as they come out of per-activity recordings; Adam 1e-2 (inside the range mcfly samples learning
rates from), batch 32, 2 epochs, shuffle off (bug) or
on (fix).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def activity_windows(n_per: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(64, dtype=torch.float32)
    xs, ys = [], []
    for c, freq in enumerate((0.05, 0.1, 0.2, 0.3)):
        phase = 6.28 * torch.rand(n_per, 3, 1, generator=g)
        amp = (0.5 + c * 0.2) * (0.8 + 0.4 * torch.rand(n_per, 3, 1, generator=g))
        xs.append(
            amp * torch.sin(2 * math.pi * freq * t + phase) + 0.3 * torch.randn(n_per, 3, 64, generator=g)
        )
        ys.append(torch.full((n_per,), c))
    return torch.cat(xs), torch.cat(ys)


@case(
    name="class-ordered-windows-no-shuffle-predicts-last",
    source="https://github.com/NLeSC/mcfly/issues/322",
    title="1D-CNN trained on activity windows stored class by class, shuffle off: predicts the last activity",
    expect=("unshuffled-data", "predicts-mode"),
    verify=lambda bug, fixed: bug["top_class_share"] > 0.8 and fixed["val_acc"] > 0.9,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(322)
    xt, yt = activity_windows(300, g)
    xv, yv = activity_windows(80, g)
    model = nn.Sequential(
        nn.Conv1d(3, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Conv1d(16, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            model.train()
            for x, y in loader(xt, yt, batch_size=32, shuffle=not bug):
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        pred = model(xv).argmax(1)
    share = torch.bincount(pred, minlength=4).max().item() / len(pred)
    return {"top_class_share": share, "val_acc": (pred == yv).float().mean().item()}
