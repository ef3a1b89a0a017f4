"""Per-pixel classification with NLLLoss fed the raw output of a convolution, as in the old NLLLoss docs.

Source: pytorch/pytorch pull request #12703, "Fix missing final activation in NLLLoss second example"
(https://github.com/pytorch/pytorch/pull/12703): the 2D example of `nn.NLLLoss` (`m = nn.Conv2d(16, C, (3, 3))`,
`output = loss(m(conv(data)), target)`) had no LogSoftmax: "Without this activation, the second example loss
was sometimes negative." Fix: `m = nn.LogSoftmax(dim=1)` applied to the convolution's output.
Data: the digits as 8x8 images with a per-pixel target (background / faint stroke / strong stroke); a small
fully convolutional net trained with that example's loss (SGD, lr 0.1, momentum 0.9).
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images
from ...harness import case


@case(
    name="rw-nll-2d-on-conv-output",
    source="https://github.com/pytorch/pytorch/pull/12703",
    title="segmentation-style NLLLoss on a Conv2d's raw output (the docs example without LogSoftmax)",
    expect="nll-without-log-softmax",
    verify=lambda bug, fixed: (
        bug["final_loss"] < -1.0 and fixed["final_loss"] > 0 and fixed["pixel_acc"] > bug["pixel_acc"] + 0.1
    ),
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits_images(normalize=False)
    target = torch.bucketize(x[:, 0], torch.tensor([4.0, 11.0]))  # 0 background, 1 faint, 2 strong
    inputs = x / 16.0
    C = 3
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, C, 3, padding=1))
    if not bug:
        model.append(nn.LogSoftmax(dim=1))
    loss = nn.NLLLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with nb.watch(model, optimizer):
        for _epoch in range(2):
            perm = torch.randperm(1400)
            for i in range(0, 1400, 50):
                idx = perm[i : i + 50]
                optimizer.zero_grad()
                output = loss(model(inputs[idx]), target[idx])
                output.backward()
                optimizer.step()
    with torch.no_grad():
        pixel_acc = (model(inputs[1400:]).argmax(1) == target[1400:]).float().mean().item()
    return {"pixel_acc": pixel_acc, "final_loss": output.item()}
