"""A classifier trained with NLLLoss on `torch.log(softmax(...))` instead of LogSoftmax.

Source: pytorch/pytorch issue #1620, "[Feature Request] nn.Log (or improvement of torch.log)"
(https://github.com/pytorch/pytorch/issues/1620): "there is a difference between the behavior of
nn.LogSoftmax(x) and that of torch.log(nn.Softmax(x)). Because of that, the gradient sometimes get 'nan'." The
reporter's sample trains `nn.Linear(3, 3, bias=False)` with `optim.SGD(lr=0.01)` on inputs such as
`[[0, 50, -50]]` using `crit(torch.log(sm(model(data))), target)` with `crit = nn.NLLLoss()`, and compares it
with `crit(lsm(model(data)), target)`: "When I use nn.LogSoftmax() class, all gradients are calculated correctly."
Data: the digits, standardized and multiplied by 20 (entries up to about +-50, like the reporter's input),
into a linear classifier; SGD lr=0.01, batch 32. Once a softmax probability underflows to 0, log gives -inf and the
gradient NaN, and the weights are lost.
"""

from __future__ import annotations

import math

import torch
from torch import nn, optim

from ...data import digits, loader, split
from ...harness import case


@case(
    name="rw-log-of-softmax-nan-linear",
    source="https://github.com/pytorch/pytorch/issues/1620",
    title="linear classifier on large inputs, NLLLoss(torch.log(softmax(x))): -inf loss, NaN gradients",
    expect="log-softmax-unstable",
    verify=lambda bug, fixed: (
        not math.isfinite(bug["loss"]) and math.isfinite(fixed["loss"]) and fixed["val_acc"] > 0.4
    ),
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits()
    (xt, yt), (xv, yv) = split(x * 20, y)  # inputs of magnitude ~50, like the reporter's [[0, 50, -50]]
    sm, lsm = nn.Softmax(dim=1), nn.LogSoftmax(dim=1)
    crit = nn.NLLLoss()
    model = nn.Linear(64, 10, bias=False)
    optimizer = optim.SGD(model.parameters(), lr=0.01)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for data, target in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = crit(torch.log(sm(model(data))), target) if bug else crit(lsm(model(data)), target)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "loss": loss.item()}
