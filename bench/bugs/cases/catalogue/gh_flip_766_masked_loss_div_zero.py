"""A masked multi-label BCE loss divided by mask.sum(): a batch with only unannotated studies is 0/0.

Source: londonaicentre/FLIP pull request #766, "Flower xray_classification tutorial: deterministic
loss=nan on training start" https://github.com/londonaicentre/FLIP/pull/766
Reported: a fully-masked batch ("every label -1, e.g. when a shuffled batch happens to contain only
unannotated studies") gives 0/0 = NaN, which "propagates through loss.backward() + optimizer.step() and
poisons every model weight, so one bad batch would turn the whole training pass NaN".
Fix (merged): `loss.sum() / mask.sum().clamp_min(1.0)`. The loss is the tutorial's; the chest X-ray
DenseNet is replaced by a small CNN on the 8x8 digits with 4 findings per image (digit >= 5, even, has a
loop, is 1/4/7), 60% of the studies unannotated (all labels -1), batch size 4, Adam 1e-4.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case
from ._common import gen
from .gh_lanedet_32_exist_sigmoid_bcelogits import exist_targets


def masked_bce(outputs: torch.Tensor, targets: torch.Tensor, clamp: bool) -> torch.Tensor:
    loss_function = nn.BCEWithLogitsLoss(reduction="none")
    mask = (targets != -1).to(dtype=targets.dtype)
    loss = loss_function(outputs, targets) * mask
    return loss.sum() / (mask.sum().clamp_min(1.0) if clamp else mask.sum())


@case(
    name="masked-bce-zero-annotated-batch",
    source="https://github.com/londonaicentre/FLIP/pull/766",
    title="masked multi-label BCE divided by mask.sum(): a fully-unannotated batch gives 0/0 = NaN",
    expect="nonfinite",
    verify=lambda bug, fixed: (
        bug["nonfinite_params"] > 0 and fixed["nonfinite_params"] == 0 and fixed["val_acc"] > 0.7
    ),
    category="numerics",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    targets = exist_targets(yt)
    unannotated = torch.rand(len(targets), generator=gen(766)) < 0.6
    targets[unannotated] = -1.0
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 64),
        nn.ReLU(), nn.Linear(64, 4),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            model.train()
            for xb, tb in loader(xt, targets, batch_size=4):
                optimizer.zero_grad()
                loss = masked_bce(model(xb), tb, clamp=not bug)
                loss.backward()
                optimizer.step()
    bad = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
    model.eval()
    with torch.no_grad():
        acc = ((model(xv) > 0).float() == exist_targets(yv)).float().mean().item()
    return {"nonfinite_params": float(bad), "val_acc": acc}
