"""Regressing x^3 on raw x = 1..3999 with a small ReLU MLP: neither the input nor the target is scaled.

Source: PyTorch forum, "Neural network could not learn on this type of data, why?"
https://discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648/5
The answer's fix ("You could normalize the input (which is usually done anyway) and also normalize the
target to train the model ... which can successfully learn the data using this approach") and its code:
`nn.Linear(1, 50)`, ReLU, `nn.Linear(50, 1)`, Adam(lr=1e-3), MSELoss, full batch, input
`range(1, 4000)` and target `d**3`; the bug is the same loop on the raw tensors. 300 epochs here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case


class Network(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features=1, out_features=50, bias=True)
        self.fc2 = nn.Linear(in_features=50, out_features=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


@case(
    name="raw-input-and-target-cubic-regression",
    source="https://discuss.pytorch.org/t/neural-network-could-not-learn-on-this-type-of-data-why/96648/5",
    title="MLP fit to d**3 on raw d in 1..3999 (no input/target normalisation): it cannot learn",
    expect="unnormalized-input",
    verify=lambda bug, fixed: bug["r2"] < 0.5 and fixed["r2"] > 0.95,
    quick=True,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    input = torch.tensor([x for x in range(1, 4000)]).float().unsqueeze(1)
    target = input**3
    model = Network()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.MSELoss()
    x, y = input, target
    if not bug:
        x = (input - input.mean()) / input.std()
        y = (target - target.mean()) / target.std()
    with nb.watch(model, optimizer):
        for _epoch in range(300):
            optimizer.zero_grad()
            out = model(x)
            loss = criterion(out, y)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        pred = model(x)
        pred = pred if bug else pred * target.std() + target.mean()
    r2 = 1 - ((pred - target) ** 2).mean() / ((target - target.mean()) ** 2).mean()
    return {"r2": r2.item()}
