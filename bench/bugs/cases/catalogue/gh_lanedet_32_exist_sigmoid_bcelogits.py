"""lanedet's lane-existence head: fc -> sigmoid, trained with BCEWithLogitsLoss (sigmoid applied twice).

Source: Turoad/lanedet issue #32, "it seems that the sigmoid function used twice"
https://github.com/Turoad/lanedet/issues/32
Reported: "in exist_head.py, the output of fc10 was then put into an sigmoid function, but in
lane_seg.py, you used BCEWithLogitsLoss() to calculate BCE loss, it seems that the sigmoid function was
used twice." Fix: feed the fc output (logits) to BCEWithLogitsLoss. Scaled down: a small conv backbone on
the 8x8 digits stands in for the lane backbone, and four binary "existence" targets per image (digit
>= 5, even, has a loop, is 1/4/7) stand in for the four lanes; SGD(lr=0.025, momentum=0.9) as in
lanedet's CULane configs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class ExistNet(nn.Module):
    def __init__(self, sigmoid: bool) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AvgPool2d(2), nn.Flatten(),
        )  # fmt: skip
        self.fc9 = nn.Linear(32 * 16, 128)
        self.fc10 = nn.Linear(128, 4)
        self.sigmoid = sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc9(self.backbone(x)))
        x = self.fc10(x)
        return torch.sigmoid(x) if self.sigmoid else x


def exist_targets(y: torch.Tensor) -> torch.Tensor:
    loop = torch.isin(y, torch.tensor([0, 6, 8, 9]))
    straight = torch.isin(y, torch.tensor([1, 4, 7]))
    return torch.stack([y >= 5, y % 2 == 0, loop, straight], dim=1).float()


@case(
    name="sigmoid-bcelogits-lane-exist-head",
    source="https://github.com/Turoad/lanedet/issues/32",
    title="existence head ending in torch.sigmoid, trained with nn.BCEWithLogitsLoss",
    expect="sigmoid-before-bce-logits",
    verify=lambda bug, fixed: (
        bug["epoch_loss"] > 0.45
        and fixed["epoch_loss"] < 0.4
        and fixed["exist_acc"] > bug["exist_acc"] + 0.15
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = ExistNet(sigmoid=bug)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=1e-4)
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            losses = []
            for x, y in loader(xt, exist_targets(yt), batch_size=32):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        out = model(xv)
        prob = out if bug else torch.sigmoid(out)
        acc = ((prob > 0.5).float() == exist_targets(yv)).float().mean().item()
    return {"epoch_loss": sum(losses) / len(losses), "exist_acc": acc}
