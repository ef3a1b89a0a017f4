"""PointNet classification trained with `F.nll_loss` on the network's raw scores (no log_softmax).

Source: yanx27/Pointnet_Pointnet2_pytorch issue #30, "wrong label loss in PointNetLoss"
(https://github.com/yanx27/Pointnet_Pointnet2_pytorch/issues/30): "`nll_loss` is used but the input
`labels_pred` ... is not a `log_softmax`, causing a negative `label loss` value. Either using a `log_softmax`
before `nll_loss` or change the `nll_loss` to `cross_entropy` can solve it." NLLLoss of raw scores is just
-score[target]: it is unbounded below, so the loss runs off to large negative values instead of fitting.
Data: synthetic point clouds of four shapes (64 points) instead of ModelNet40; PointNet scaled to 128-dim
global features (no T-Net); Adam(lr=1e-3, weight_decay=1e-4), batch 24, as in the repository.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...harness import case
from ._common import PointNetCls, point_clouds


@case(
    name="rw-nll-on-raw-scores-pointnet",
    source="https://github.com/yanx27/Pointnet_Pointnet2_pytorch/issues/30",
    title="PointNet classifier: F.nll_loss on raw fc3 scores, the loss goes negative and keeps falling",
    expect="nll-without-log-softmax",
    # the reporter's symptom: a negative label loss (on these easy shapes the argmax still ends up right)
    verify=lambda bug, fixed: bug["final_loss"] < -1.0 and fixed["final_loss"] > 0 and fixed["val_acc"] > 0.9,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = point_clouds(600, n_points=64, seed=30)
    xt, yt, xv, yv = x[:480], y[:480], x[480:], y[480:]
    classifier = PointNetCls(k=4, out="logits" if bug else "log_softmax")
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4)
    with nb.watch(classifier, optimizer):
        for _epoch in range(4):
            classifier.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt) - 23, 24):
                points, target = xt[perm[i : i + 24]], yt[perm[i : i + 24]]
                optimizer.zero_grad()
                pred = classifier(points)
                loss = F.nll_loss(pred, target)
                loss.backward()
                optimizer.step()
    classifier.eval()
    with torch.no_grad():
        val_acc = (classifier(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "final_loss": loss.item()}
