"""An SNLI-style MLP classifier whose hidden layers are kept in a plain Python list.

Source: pytorch/pytorch issue #715, "Module: parameters are not included if the module is initialized in a
list" (https://github.com/pytorch/pytorch/issues/715). The reporter built `self.hids = []` and appended
`[nn.Linear(n_hid, n_hid), act]` per layer in `__init__`, with `self.classifier = nn.Linear(n_hid, 3)`;
printing the model showed only the classifier, so the optimizer never saw the hidden layers.
Fix (apaszke's answer): wrap the layers in `nn.ModuleList` so they are registered.
Data: the digits stand in for the sentence-pair features; the hidden stack and the classifier are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import accuracy, digits, loader, split
from ...harness import case
from ._common import moved, snapshot


class SNLINet(nn.Module):
    def __init__(self, n_in: int, n_hid: int, n_layers: int, n_classes: int, registered: bool) -> None:
        super().__init__()
        hids = []
        indim = n_in
        for _ in range(n_layers):
            hids.append(nn.Sequential(nn.Linear(indim, n_hid), nn.ReLU()))
            indim = n_hid
        self.hids = nn.ModuleList(hids) if registered else hids
        self.classifier = nn.Linear(n_hid, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hids:
            x = layer(x)
        return self.classifier(x)


@case(
    name="rw-unregistered-hidden-layers-list",
    source="https://github.com/pytorch/pytorch/issues/715",
    title="MLP classifier with its hidden layers in a plain list: only the classifier is in parameters()",
    expect="unregistered-submodule",
    verify=lambda bug, fixed: (
        bug["hidden_moved"] == 0.0
        and fixed["hidden_moved"] > 1e-3
        and fixed["val_acc"] > bug["val_acc"] + 0.03
    ),
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = SNLINet(64, 32, 2, 10, registered=not bug)
    hidden = [m for m in model.hids]
    before = snapshot(*hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
    return {"val_acc": accuracy(model, xv, yv), "hidden_moved": moved(before, *hidden), "loss": loss.item()}
