"""A population-disaggregation net whose positive "scale" output goes through ReLU and starts at 0.

Source: jvargasmu/population_estimation issue #68, "Sometimes the initial solution predicts only zeros
(due to RELU activation)" https://github.com/jvargasmu/population_estimation/issues/68
Reported: "Sometimes the initial solution predicts only zeros (due to RELU activation). And hence, no
gradients emerge. We should maybe change this to a softRelu/Softplus." Scaled down: a per-cell network
predicts a non-negative occupancy rate from cell features; the rates are summed over the cells of each
census region and fitted to the region's count with an L1 loss (the coarse-supervision setup of the
repo); Adam 1e-3. The bug keeps ReLU on the output, the fix uses Softplus; this seed is an unlucky one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen


class ScaleNet(nn.Module):
    def __init__(self, relu: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.body(x).squeeze(-1)
        return F.relu(z) if self.relu else F.softplus(z)


@case(
    name="relu-scale-output-predicts-zeros",
    source="https://github.com/jvargasmu/population_estimation/issues/68",
    title="per-cell occupancy net ending in ReLU: the initial solution is all zeros and no gradient flows",
    expect="dead-relu",
    verify=lambda bug, fixed: bug["zero_fraction"] > 0.99 and fixed["region_l1"] < 0.5 * bug["region_l1"],
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(68)
    regions, cells = 300, 50
    feats = torch.randn(regions, cells, 8, generator=g)
    rate = F.softplus(feats @ torch.linspace(-1, 1, 8) + 0.5)
    counts = rate.sum(1)
    torch.manual_seed(32)
    model = ScaleNet(relu=bug)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(20):
            for i in range(0, regions, 30):
                optimizer.zero_grad()
                pred = model(feats[i : i + 30]).sum(1)
                loss = F.l1_loss(pred, counts[i : i + 30])
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        cell_pred = model(feats)
        l1 = (cell_pred.sum(1) - counts).abs().mean().item()
    return {"zero_fraction": (cell_pred == 0).float().mean().item(), "region_l1": l1}
