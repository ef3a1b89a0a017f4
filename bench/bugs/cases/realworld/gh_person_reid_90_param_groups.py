"""Healthy: fine-tuning with parameter groups (backbone at 0.1x the classifier's learning rate).

Source: layumi/Person_reID_baseline_pytorch, train.py, as quoted in issue #90
(https://github.com/layumi/Person_reID_baseline_pytorch/issues/90): `optim.SGD([{'params': base_params,
'lr': 0.1*opt.lr}, {'params': classifier_params, 'lr': opt.lr}], weight_decay=5e-4, momentum=0.9,
nesterov=True)` with opt.lr=0.05, batch size 32 and a per-epoch StepLR. Two learning rates on purpose: every
trainable parameter is in the optimizer and nbdebug must stay silent.
Data: a small CNN pre-trained on other digits stands in for the ImageNet ResNet-50; the new task is
digits 5-9 among examples it was not pre-trained on; the ClassBlock (Linear-BN-Dropout-Linear) is kept.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...harness import case
from ._common import new_task_digits, pretrained_cnn


class ClassBlock(nn.Module):
    def __init__(self, input_dim: int, class_num: int, num_bottleneck: int = 64) -> None:
        super().__init__()
        self.add_block = nn.Sequential(
            nn.Linear(input_dim, num_bottleneck), nn.BatchNorm1d(num_bottleneck), nn.Dropout(0.5)
        )
        self.classifier = nn.Linear(num_bottleneck, class_num)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.add_block(x))


@case(
    name="rw-healthy-param-groups-finetune",
    source="https://github.com/layumi/Person_reID_baseline_pytorch/issues/90",
    title="re-ID baseline: SGD with a 0.1x group for the pretrained backbone and 1x for the new classifier",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.85,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    xt, yt, xv, yv = new_task_digits()
    backbone = pretrained_cnn().features
    model = nn.Sequential(backbone, ClassBlock(32, 5))
    lr = 0.05
    ignored_params = list(map(id, model[1].parameters()))
    base_params = filter(lambda p: id(p) not in ignored_params, model.parameters())
    optimizer_ft = optim.SGD(
        [{"params": base_params, "lr": 0.1 * lr}, {"params": model[1].parameters(), "lr": lr}],
        weight_decay=5e-4, momentum=0.9, nesterov=True,
    )  # fmt: skip
    exp_lr_scheduler = optim.lr_scheduler.StepLR(optimizer_ft, step_size=40, gamma=0.1)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer_ft):
        for _epoch in range(3):
            model.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt) - 31, 32):
                idx = perm[i : i + 32]
                optimizer_ft.zero_grad()
                loss = criterion(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer_ft.step()
            exp_lr_scheduler.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "loss": loss.item()}
