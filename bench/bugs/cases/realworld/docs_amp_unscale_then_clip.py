"""Healthy: the documented AMP recipe for gradient clipping (unscale, then clip).

Source: PyTorch docs, "Automatic Mixed Precision examples", section "Gradient clipping"
(https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping): `scaler.scale(loss).backward()`,
`scaler.unscale_(optimizer)`, `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)`,
`scaler.step(optimizer)`, `scaler.update()`. The counterpart of the clip-before-unscale bugs: nbdebug must stay
silent.
Data: the digits; an MLP classifier with SGD (momentum 0.9) and max_norm=1.0; GradScaler("cpu") on float32.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case


@case(
    name="rw-healthy-amp-unscale-then-clip",
    source="https://pytorch.org/docs/stable/notes/amp_examples.html#gradient-clipping",
    title="AMP docs recipe: scaler.unscale_(optimizer) before clip_grad_norm_",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.9,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu")
    max_norm = 1.0
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for input, target in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                output = model(input)
                loss = loss_fn(output, target)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                scaler.step(optimizer)
                scaler.update()
    return {"val_acc": accuracy(model, xv, yv), "loss": loss.item()}
