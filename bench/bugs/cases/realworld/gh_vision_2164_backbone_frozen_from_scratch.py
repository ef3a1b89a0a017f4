"""A ResNet-FPN style backbone built from scratch whose helper still freezes conv1 and layer1.

Source: pytorch/vision issue #2164, "Faster Rcnn construction function freezes backbone layers even for
random initialized backbone" (https://github.com/pytorch/vision/issues/2164). `resnet_fpn_backbone` set
`requires_grad_(False)` on every parameter not in layer2/layer3/layer4, a rule meant for a pretrained
backbone: "If pretrained backbone is not used ... no layers should be frozen. Otherwise initial layers will
always have randomly initialized weights ... This resulted in poor AP when we were training faster rcnn with
resnet backbone from scratch". Fix (PR #2160, `trainable_layers`): freeze only when the backbone is pretrained.
Data: the digits with a classification head instead of the detection heads (a detector does not fit a
seconds-long CPU run); on the digits the frozen random stem costs little accuracy, so the symptom shown is
the reporter's "initial layers will always have randomly initialized weights". The freezing rule, the `[p for p in model.parameters() if p.requires_grad]` parameter
list and SGD(lr=0.02, momentum=0.9, weight_decay=1e-4) are those of torchvision's detection reference.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits_images, loader, split
from ...harness import case
from ._common import moved, snapshot


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.layer4 = BasicBlock(64, 64, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def resnet_fpn_backbone(pretrained: bool, bug: bool) -> Backbone:
    backbone = Backbone()
    if bug or pretrained:  # the fix freezes only a pretrained backbone
        for name, parameter in backbone.named_parameters():
            if "layer2" not in name and "layer3" not in name and "layer4" not in name:
                parameter.requires_grad_(False)
    return backbone


@case(
    name="rw-frozen-backbone-stem-from-scratch",
    source="https://github.com/pytorch/vision/issues/2164",
    title="backbone trained from scratch, but the helper freezes conv1/layer1 at their random init",
    expect="frozen-by-accident",
    verify=lambda bug, fixed: (
        bug["stem_moved"] == 0.0 and fixed["stem_moved"] > 1e-3 and fixed["val_acc"] > 0.9
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    backbone = resnet_fpn_backbone(pretrained=False, bug=bug)
    model = nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    stem = [backbone.conv1, backbone.bn1, backbone.layer1]
    before = snapshot(*stem)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            model.train()
            for x, y in loader(xt, yt, batch_size=16):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
    return {"val_acc": accuracy(model, xv, yv), "stem_moved": moved(before, *stem), "loss": loss.item()}
