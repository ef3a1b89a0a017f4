"""A joint detection/re-ID model whose ID classifier and loss weights live in the loss module, outside the
optimizer.

Source: ifzhang/FairMOT issue #125, 'why is the "self.classifier = nn.Linear(self.emb_dim, self.nID)" not
optimized?' (https://github.com/ifzhang/FairMOT/issues/125). `MotLoss` owns the re-ID classifier
`nn.Linear(emb_dim, nID)` and the learnable task weights `s_det`, `s_id`, but the optimizer is built with
`torch.optim.Adam(model.parameters(), lr)`, so none of them is ever updated. The author: "You can add it to
the optimizer."
Data: the digits (identity = digit, "detection" target = a 2-way objectness label); the MotLoss structure
(emb_scale * normalize, classifier, uncertainty weighting with s_det/s_id) and Adam lr=1e-4 are kept.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits, loader, split
from ...harness import case
from ._common import moved, snapshot


class Model(nn.Module):
    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.base = nn.Sequential(nn.Linear(64, 128), nn.ReLU())
        self.det_head = nn.Linear(128, 2)
        self.id_head = nn.Linear(128, emb_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.base(x)
        return self.det_head(h), self.id_head(h)


class MotLoss(nn.Module):
    def __init__(self, emb_dim: int, nID: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(emb_dim, nID)
        self.emb_scale = math.sqrt(2) * math.log(nID - 1)
        self.s_det = nn.Parameter(-1.85 * torch.ones(1))
        self.s_id = nn.Parameter(-1.05 * torch.ones(1))

    def forward(
        self, det: torch.Tensor, emb: torch.Tensor, det_t: torch.Tensor, id_t: torch.Tensor
    ) -> torch.Tensor:
        det_loss = F.cross_entropy(det, det_t)
        id_output = self.classifier(self.emb_scale * F.normalize(emb))
        id_loss = F.cross_entropy(id_output, id_t)
        loss = torch.exp(-self.s_det) * det_loss + torch.exp(-self.s_id) * id_loss + (self.s_det + self.s_id)
        return 0.5 * loss


@case(
    name="rw-params-not-in-optimizer-loss-module-classifier",
    source="https://github.com/ifzhang/FairMOT/issues/125",
    title="re-ID classifier and loss weights live in the loss module; Adam gets model.parameters() only",
    expect="params-not-in-optimizer",
    verify=lambda bug, fixed: bug["loss_params_moved"] == 0.0 and fixed["loss_params_moved"] > 1e-3,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = Model(emb_dim=32)
    loss_fn = MotLoss(emb_dim=32, nID=10)
    params = list(model.parameters()) if bug else list(model.parameters()) + list(loss_fn.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-4)
    before = snapshot(loss_fn)
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            for x, y in loader(xt, yt, batch_size=32):
                det, emb = model(x)
                loss = loss_fn(det, emb, (y % 2 == 0).long(), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        det, emb = model(xv)
        id_acc = (loss_fn.classifier(F.normalize(emb)).argmax(1) == yv).float().mean().item()
    return {"id_acc": id_acc, "loss_params_moved": moved(before, loss_fn), "loss": loss.item()}
