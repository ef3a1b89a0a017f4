"""CSP pedestrian detector with its two head biases swapped: the centre-classification conv starts at
bias 0 (p = 0.5 everywhere) and the scale-regression conv at -log(99): the first loss is far too large.

Source: lwpyr/CSP-pedestrian-detection-in-pytorch issue #4, "Parameter initialization is wrong."
https://github.com/lwpyr/CSP-pedestrian-detection-in-pytorch/issues/4
Reported: `nn.init.constant_(self.pos_conv.bias, 0)` and `nn.init.constant_(self.reg_conv.bias,
-math.log(0.99/0.01))` "causes a large loss at the beginning"; the two lines should be swapped (the
prior-probability bias belongs on the centre classifier). The author agreed, noting the run still
recovers later. Scaled down: a conv backbone on the 8x8 digits, a centre heatmap (one positive cell per
image: its brightest pixel) trained with sigmoid BCE and a per-image "scale" regressed with L1 at the
centre, Adam 1e-4 as in the repo.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class CSPHead(nn.Module):
    def __init__(self, swapped: bool) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU()
        )
        self.pos_conv = nn.Conv2d(32, 1, 1)
        self.reg_conv = nn.Conv2d(32, 1, 1)
        for conv in (self.pos_conv, self.reg_conv):
            nn.init.xavier_normal_(conv.weight)
        prior = -math.log(0.99 / 0.01)
        nn.init.constant_(self.pos_conv.bias, 0 if swapped else prior)
        nn.init.constant_(self.reg_conv.bias, prior if swapped else 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feat = self.backbone(x)
        return self.pos_conv(feat), self.reg_conv(feat)


@case(
    name="csp-swapped-head-bias-init-initial-loss",
    source="https://github.com/lwpyr/CSP-pedestrian-detection-in-pytorch/issues/4",
    title="detector heads with the -log(99) prior bias on the regression conv instead of the classifier",
    expect="initial-loss",
    verify=lambda bug, fixed: bug["first_loss"] > 3 * fixed["first_loss"],
    category="initialization",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, _), (xv, _) = split(*digits_images())
    scale_t = xt.flatten(1).sum(1) / xt.flatten(1).sum(1).std()
    model = CSPHead(swapped=bug)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    losses = []
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            for img, scale in loader(xt, scale_t, batch_size=16):
                center = F.one_hot(img.flatten(1).argmax(1), 64).float().view(-1, 1, 8, 8)
                pos, reg = model(img)
                loss_cls = F.binary_cross_entropy_with_logits(pos, center)
                loss_reg = F.l1_loss((reg * center).sum((1, 2, 3)), scale)
                loss = loss_cls + loss_reg
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    return {"first_loss": losses[0], "last_loss": sum(losses[-20:]) / 20}
