"""An MLP whose forward applies `F.dropout` without `training=self.training`: dropout stays on in eval().

Source: pytorch/pytorch issue #11999, "Dropout still active in .eval() mode"
(https://github.com/pytorch/pytorch/issues/11999): "I'm finding that dropout is still left enabled during testing
even though .eval() is used ... More testing suggest that it's the use of the functional API version of dropout
in the forward section of my NN model definition that's the problem." `F.dropout(x, p)` defaults to
`training=True`; the fix is `F.dropout(x, p, training=self.training)` (or an `nn.Dropout` module).
Data: the digits; a two-hidden-layer MLP with p=0.5 functional dropout, Adam lr=1e-3, batch 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits, loader, split
from ...harness import case


class Net(nn.Module):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 128), nn.Linear(128, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = True if self.bug else self.training  # F.dropout's default is training=True
        x = F.dropout(F.relu(self.fc1(x)), p=0.5, training=training)
        x = F.dropout(F.relu(self.fc2(x)), p=0.5, training=training)
        return self.fc3(x)


@case(
    name="rw-dropout-functional-active-in-eval",
    source="https://github.com/pytorch/pytorch/issues/11999",
    title="MLP with F.dropout(x, 0.5) in forward: model.eval() does not turn it off, predictions are random",
    expect="dropout-active-in-eval",
    verify=lambda bug, fixed: (
        bug["eval_disagreement"] > 0.02
        and fixed["eval_disagreement"] == 0.0
        and fixed["val_acc"] > bug["val_acc"]
    ),
    quick=True,
    category="eval",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = Net(bug)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            model.train()
            for x, y in loader(xt, yt, batch_size=64):
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                pred1, pred2 = model(xv).argmax(1), model(xv).argmax(1)
    return {
        "val_acc": (pred1 == yv).float().mean().item(),
        "eval_disagreement": (pred1 != pred2).float().mean().item(),  # two eval passes, same inputs
        "loss": loss.item(),
    }
