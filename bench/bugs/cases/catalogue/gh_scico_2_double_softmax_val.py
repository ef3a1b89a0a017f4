"""SciCo's multiclass pair classifier: the validation loss feeds softmaxed probabilities to CrossEntropyLoss.

Source: ariecattan/SciCo issue #2, "Double-softmax in validation loss"
https://github.com/ariecattan/SciCo/issues/2
Reported: "Validation loss quickly gets stuck around 1.0 and only decreases very slightly ... due to the
logits being softmaxed into probabilities before being fed into the CrossEntropyLoss ... This bounds the
minimum possible loss per example to roughly 0.74. Training loss does not appear to have this issue."
Fix (maintainer): pass the logits. Scaled down: the Longformer pair encoder is replaced by an MLP over
the concatenated pair features; four relation classes as in SciCo; training on logits, validation each
epoch in eval mode under no_grad with the softmax, as in models/muticlass.py.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


def pair_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of 16-d mention vectors; the relation (0..3) is a function of their similarity structure."""
    a, b = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    s1 = (a[:, :8] * b[:, :8]).sum(1)
    s2 = (a[:, 8:] * b[:, 8:]).sum(1)
    y = (s1 > 0).long() * 2 + (s2 > 0).long()
    return torch.cat([a, b, a * b], dim=1), y


@case(
    name="double-softmax-validation-loss",
    source="https://github.com/ariecattan/SciCo/issues/2",
    title="SciCo multiclass pair classifier whose validation loss is CrossEntropyLoss(softmax(logits))",
    expect="softmax-before-ce",
    verify=lambda bug, fixed: (
        bug["val_loss"] > 0.74 and fixed["val_loss"] < 0.6 and abs(bug["val_acc"] - fixed["val_acc"]) < 0.02
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(2)
    xt, yt = pair_data(2000, g)
    xv, yv = pair_data(500, g)
    model = nn.Sequential(nn.Linear(48, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 4))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(6):
            model.train()
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(xv)
                scores = torch.softmax(logits, dim=1) if bug else logits
                val_loss = criterion(scores, yv).item()
    return {"val_loss": val_loss, "val_acc": (logits.argmax(1) == yv).float().mean().item()}
