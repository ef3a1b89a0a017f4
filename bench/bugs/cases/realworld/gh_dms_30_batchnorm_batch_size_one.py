"""A segmentation network with BatchNorm trained with batch size 1, then evaluated in eval mode.

Source: BCV-Uniandes/DMS issue #30, "Why net.train() in evaluate function?"
(https://github.com/BCV-Uniandes/DMS/issues/30): the evaluation code puts the network in train mode; the authors:
"we evaluate on train mode due to the unstability of BN blocks of the backbone network, i.e., DPN-92. As we
train with batch size = 1, the model is unable to capture proper statistics per 'batch' (Instance, actually)."
With batch size 1 each BatchNorm normalizes one image by its own statistics; the running averages used by
`model.eval()` describe no image, so eval-mode predictions fall far below train-mode ones. The fix the authors
use: evaluate with `net.train()`, i.e. with the same per-image statistics as in training.
Data: the digits with random per-image contrast and brightness, segmented into foreground strokes; a small
conv-BN-ReLU network, BCE loss, Adam(lr=1e-3), batch size 1, 2 epochs over 600 images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...harness import case
from ._common import iou, seg_net, segmentation_digits


@case(
    name="rw-batchnorm-batch-size-one-eval-mode",
    source="https://github.com/BCV-Uniandes/DMS/issues/30",
    title="segmentation net with BatchNorm trained at batch size 1: eval-mode IoU far below train-mode IoU",
    expect="batchnorm-small-batch",
    verify=lambda bug, fixed: bug["eval_iou"] < bug["train_mode_iou"] - 0.15 and fixed["eval_iou"] > 0.9,
    category="eval",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, mask = segmentation_digits(seed=30)
    xt, mt, xv, mv = x[:600], mask[:600], x[1400:], mask[1400:]
    net = seg_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    with nb.watch(net, optimizer):
        for _epoch in range(2):
            net.train()
            for i in torch.randperm(len(xt)).tolist():
                optimizer.zero_grad()
                loss = F.binary_cross_entropy_with_logits(net(xt[i : i + 1]), mt[i : i + 1])
                loss.backward()
                optimizer.step()

    def evaluate(train_mode: bool) -> float:
        net.train(train_mode)  # the authors' evaluate() calls net.train()
        with torch.no_grad():
            out = torch.cat([net(xv[i : i + 1]) for i in range(len(xv))])  # batch size 1 at test time too
        return iou(out, mv)

    train_mode_iou = evaluate(True)
    return {"eval_iou": evaluate(bug is False), "train_mode_iou": train_mode_iou, "loss": loss.item()}
