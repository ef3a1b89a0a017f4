"""PointNet classifier whose final log_softmax is taken over dim=0, the batch.

Source: fxia22/pointnet.pytorch issue #27, "Confusion about the usage of log_softmax function"
(https://github.com/fxia22/pointnet.pytorch/issues/27): "`return F.log_softmax(x, dim=0), trans` ... Dim0 means
the dimension of batch. However, the log_softmax should be applied along the channels. So I think the parameter
dim should be set as -1." The author: "This issue is fixed in lastest master branch" (dim=1).
Data: synthetic point clouds of four shapes (64 points) instead of ShapeNet; PointNet scaled to 128-dim
global features (no T-Net); F.nll_loss, SGD(lr=0.01, momentum=0.9), batch 32, as in train_classification.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...harness import case
from ._common import PointNetCls, point_clouds


@case(
    name="rw-log-softmax-dim0-pointnet",
    source="https://github.com/fxia22/pointnet.pytorch/issues/27",
    title="PointNet classifier: F.log_softmax(x, dim=0) normalizes over the batch, not the classes",
    expect="softmax-wrong-dim",
    # in batches the argmax survives (each class column is shifted by a constant), but the outputs are not
    # per-example log-probabilities: the loss stays near log(batch), and one example at a time is always class 0
    verify=lambda bug, fixed: (
        bug["loss"] > 1.5
        and fixed["loss"] < 0.5
        and bug["one_by_one_acc"] < 0.4
        and fixed["one_by_one_acc"] > 0.85
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = point_clouds(600, n_points=64, seed=27)
    xt, yt, xv, yv = x[:480], y[:480], x[480:], y[480:]
    classifier = PointNetCls(k=4, out="log_softmax_dim0" if bug else "log_softmax")
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.01, momentum=0.9)
    with nb.watch(classifier, optimizer):
        for _epoch in range(3):
            classifier.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt) - 31, 32):
                points, target = xt[perm[i : i + 32]], yt[perm[i : i + 32]]
                optimizer.zero_grad()
                pred = classifier(points)
                loss = F.nll_loss(pred, target)
                loss.backward()
                optimizer.step()
    classifier.eval()
    with torch.no_grad():
        val_acc = (classifier(xv).argmax(1) == yv).float().mean().item()
        one_by_one = sum(int(classifier(xv[i : i + 1]).argmax(1) == yv[i]) for i in range(len(xv))) / len(xv)
    return {"val_acc": val_acc, "one_by_one_acc": one_by_one, "loss": loss.item()}
