"""A network swapped for another one after its Adam optimizer was built.

Source: pytorch/pytorch issue #54765, "I wonder if I need to reset optimizer function when network structure
is changed?" (https://github.com/pytorch/pytorch/issues/54765). The reporter wrote
`net1 = Net(); optimizer = optim.Adam(net1.parameters(), lr=3e-2)`, later `net1 = Net2()`, and trained
without re-creating the optimizer: "I found this is workable with no error". Fix (ezyang): "You need to
reinitialize the optimizer; otherwise it doesn't know anything about the new nets parameters."
Data: the digits; Net and Net2 are two small MLPs (the issue does not show them); Adam lr=3e-2 as posted.
"""

from __future__ import annotations

from torch import nn, optim

from ...data import accuracy, digits, loader, split
from ...harness import case
from ._common import moved, snapshot


def Net() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def Net2() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


@case(
    name="rw-stale-optimizer-net-replaced",
    source="https://github.com/pytorch/pytorch/issues/54765",
    title="Adam built on Net's parameters, then net1 = Net2(): the optimizer steps the discarded network",
    expect="optimizer-stale-params",
    verify=lambda bug, fixed: bug["net2_moved"] == 0.0 and bug["val_acc"] < 0.25 and fixed["val_acc"] > 0.85,
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    net1 = Net()  # 1st network
    optimizer = optim.Adam(net1.parameters(), lr=3e-2)
    # some other code ......
    net1 = Net2()  # another network
    if not bug:
        optimizer = optim.Adam(net1.parameters(), lr=3e-2)
    before = snapshot(net1)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(net1, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                loss = criterion(net1(x), y)
                loss.backward()
                optimizer.step()
    return {"val_acc": accuracy(net1, xv, yv), "net2_moved": moved(before, net1), "loss": loss.item()}
