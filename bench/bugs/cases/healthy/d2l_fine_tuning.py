"""Dive into Deep Learning 14.2, Fine-Tuning: a pretrained ResNet with a new 2-class `fc` (Xavier-uniform
weight), SGD with two parameter groups, the pretrained layers at lr=5e-5 and `net.fc.parameters()` at ten
times that, weight_decay=0.001, CrossEntropyLoss(reduction="none") summed over the batch before backward
(`l.sum().backward()` in d2l.train_batch_ch13), batch 128, 5 epochs, test accuracy (eval mode, no_grad)
after each epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_computer-vision/fine-tuning.md
The book reports test accuracy ~0.93 on hot dog / not hot dog, higher than training from scratch. The
per-parameter learning rates are tiny on purpose (the pretrained weights should barely move) and the
summed loss makes each gradient 128 times that of a mean.
Scaled: a resnet18-shaped TinyResNet "pretrained" on digits 0-7 stands in for the ImageNet weights and
digits 8 vs 9 (250 train images) for the hot dog data; 20 epochs of 2 batches instead of 5 of 16; no
nn.DataParallel wrapper (train_ch13 adds one for GPUs). A user watches `finetune_net` with its optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import pretrained_tiny_resnet, two_class_digits


@case(
    name="healthy-d2l-finetune-param-groups",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_computer-vision/fine-tuning.md",
    title="d2l fine-tuning: parameter groups (backbone lr 5e-5, new fc 10x), weight decay, summed loss",
    healthy=True,
    verify=lambda m: m["test_acc"] > 0.9,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = two_class_digits()
    finetune_net = pretrained_tiny_resnet()
    finetune_net.fc = nn.Linear(finetune_net.fc.in_features, 2)
    nn.init.xavier_uniform_(finetune_net.fc.weight)
    learning_rate, batch_size, num_epochs = 5e-5, 128, 20
    train_iter = loader(xt, yt, batch_size=batch_size, shuffle=True)
    test_iter = loader(xv, yv, batch_size=batch_size, shuffle=False)
    loss = nn.CrossEntropyLoss(reduction="none")
    params_1x = [
        param for name, param in finetune_net.named_parameters() if name not in ["fc.weight", "fc.bias"]
    ]
    trainer = torch.optim.SGD(
        [{"params": params_1x}, {"params": finetune_net.fc.parameters(), "lr": learning_rate * 10}],
        lr=learning_rate,
        weight_decay=0.001,
    )

    def evaluate_accuracy(net: nn.Module) -> float:
        net.eval()
        correct = total = 0
        with torch.no_grad():
            for X, y in test_iter:
                correct += (net(X).argmax(1) == y).sum().item()
                total += y.numel()
        return correct / total

    net = finetune_net
    with nb.watch(finetune_net, trainer):
        for _epoch in range(num_epochs):
            for X, y in train_iter:
                net.train()
                trainer.zero_grad()
                pred = net(X)
                l = loss(pred, y)  # noqa: E741 (the book's name)
                l.sum().backward()
                trainer.step()
            test_acc = evaluate_accuracy(net)
    return {"test_acc": test_acc, "last_train_loss": (l.sum() / len(y)).item()}
