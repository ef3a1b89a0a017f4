"""The Microsoft Learn "multilayer dense networks" MNIST notebook with nn.LogSoftmax(dim=0).

Source: MicrosoftDocs/pytorchfundamentals issue #4, "Why is the dim=0 in LogSoftmax? not dim=1?"
(https://github.com/MicrosoftDocs/pytorchfundamentals/issues/4): the notebook's network is
`nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10), nn.LogSoftmax(dim=0))`,
trained with NLLLoss; "Of course you want to do softmax on each row because each row is each input example";
the follow-up pull request #21 changes it to dim=-1 (the fix used here: dim=1).
Data: the digits (64 inputs) instead of MNIST; the layers, NLLLoss, Adam(lr=0.01) and batch 64 of the
notebook's `train` helper are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case


@case(
    name="rw-log-softmax-dim0-dense-mnist",
    source="https://github.com/MicrosoftDocs/pytorchfundamentals/issues/4",
    title="dense MNIST classifier ending in nn.LogSoftmax(dim=0): probabilities normalized across the batch",
    expect="softmax-wrong-dim",
    # batch accuracy survives (a per-class shift), but the loss stays near log(64) and a single image is always
    # classified as 0: its log_softmax over a batch of one is all zeros
    verify=lambda bug, fixed: (
        bug["loss"] > 1.5
        and fixed["loss"] < 0.5
        and bug["one_by_one_acc"] < 0.2
        and fixed["one_by_one_acc"] > 0.9
    ),
    quick=True,
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10), nn.LogSoftmax(dim=0 if bug else 1)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    loss_fn = nn.NLLLoss()
    with nb.watch(net, optimizer):
        for _epoch in range(3):
            net.train()
            for features, labels in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                out = net(features)
                loss = loss_fn(out, labels)
                loss.backward()
                optimizer.step()
    net.eval()
    with torch.no_grad():
        # the notebook evaluates in batches of 64 as well
        correct = sum(
            int((net(xv[i : i + 64]).argmax(1) == yv[i : i + 64]).sum()) for i in range(0, len(xv), 64)
        )
        one_by_one = sum(int(net(xv[i : i + 1]).argmax(1) == yv[i]) for i in range(len(xv))) / len(xv)
    return {"val_acc": correct / len(xv), "one_by_one_acc": one_by_one, "loss": loss.item()}
