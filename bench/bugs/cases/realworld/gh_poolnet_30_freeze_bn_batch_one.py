"""Salient-object segmentation at batch size 1 (with gradient accumulation) and BatchNorm left in train mode.

Source: backseason/PoolNet issue #30, "About the .train() and .eval() mode."
(https://github.com/backseason/PoolNet/issues/30): asked why the network runs in `net.eval()` even during
training, the author answers: "the `.train()` or `.eval()` mode only affect the BN layers in our network, we
freeze these layers during both training and testing ... For now our model can only run with `batch_size=1`,
there is no reason to learn the params of these layers with so small a batch size." Training such a network
with its BatchNorm in train mode (per-image statistics) and testing it in eval mode gives the train/eval
mismatch; the fix is PoolNet's: keep the BatchNorm layers frozen (eval mode) while training.
Data: the digits with random per-image contrast and brightness, foreground masks as saliency targets; a small
conv-BN-ReLU network pre-trained with ordinary batches on other images (the stand-in for PoolNet's pretrained
backbone and its BN statistics), then fine-tuned with BCE, Adam(lr=5e-5 scaled to 1e-3 for the short run, weight_decay=5e-4), batch size 1 with
iter_size=10 gradient accumulation as in PoolNet's solver.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...harness import case
from ._common import iou, seg_net, segmentation_digits


@case(
    name="rw-batchnorm-batch-one-not-frozen",
    source="https://github.com/backseason/PoolNet/issues/30",
    title="saliency net at batch size 1 with BatchNorm in train mode; tested in eval mode it falls apart",
    expect="batchnorm-small-batch",
    verify=lambda bug, fixed: (
        bug["eval_iou"] < bug["train_mode_iou"] - 0.1 and fixed["eval_iou"] > bug["eval_iou"] + 0.05
    ),
    category="eval",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, mask = segmentation_digits(seed=31)
    xt, mt, xv, mv = x[:600], mask[:600], x[1400:], mask[1400:]
    net = seg_net()
    # stand-in for the ImageNet-pretrained backbone whose BN statistics PoolNet keeps: a quick pre-training
    # with ordinary batches on other images (not watched)
    pre = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(3):
        perm = torch.randperm(800) + 600
        for j in range(0, 800, 32):
            pre.zero_grad()
            F.binary_cross_entropy_with_logits(net(x[perm[j : j + 32]]), mask[perm[j : j + 32]]).backward()
            pre.step()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=5e-4)
    iter_size = 10
    with nb.watch(net, optimizer):
        for _epoch in range(3):
            net.train() if bug else net.eval()  # PoolNet: net.eval() keeps the BN layers frozen
            optimizer.zero_grad()
            for k, i in enumerate(torch.randperm(len(xt)).tolist()):
                loss = F.binary_cross_entropy_with_logits(net(xt[i : i + 1]), mt[i : i + 1]) / iter_size
                loss.backward()
                if (k + 1) % iter_size == 0:
                    optimizer.step()
                    optimizer.zero_grad()

    def evaluate(train_mode: bool) -> float:
        net.train(train_mode)
        with torch.no_grad():
            out = torch.cat([net(xv[i : i + 1]) for i in range(len(xv))])
        return iou(out, mv)

    train_mode_iou = evaluate(True)
    return {"eval_iou": evaluate(False), "train_mode_iou": train_mode_iou, "loss": loss.item()}
