"""An LSTM regressor (ProteomicsML retention-time tutorial) whose final linear layer is followed by ReLU.

Source: ProteomicsML/ProteomicsML pull request #203, "Do not use ReLU activation for the final regression
layer" https://github.com/ProteomicsML/ProteomicsML/pull/203
Reported: "I got LSTM network returning constantly 0 for all peptides in validation set. The reason seems
to be using ReLU activation at the final linear layer. In case of unlucky initialization the (pre-ReLU)
output of the final linear layer can be always or almost always negative vanishing the gradient".
Fix: no activation on the regression output. Scaled down: one-hot "peptide" sequences (20 residues,
length 12) with a seeded synthetic retention time (standardised), the tutorial's embedding + LSTM +
dense head, Adam 1e-3; the seed gives the unlucky initialization the PR describes.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


class RTModel(nn.Module):
    def __init__(self, relu_out: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(21, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True, bidirectional=True)
        self.dense = nn.Linear(64, 32)
        self.out = nn.Linear(32, 1)
        self.relu_out = relu_out

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(seq))
        x = torch.relu(self.dense(h[:, -1]))
        x = self.out(x)
        return torch.relu(x) if self.relu_out else x


@case(
    name="relu-on-regression-output-lstm",
    source="https://github.com/ProteomicsML/ProteomicsML/pull/203",
    title="LSTM retention-time regressor ending in ReLU: the output unit is dead, predictions constant 0",
    expect="dead-relu",
    verify=lambda bug, fixed: bug["pred_std"] < 1e-3 and fixed["val_mse"] < 0.5 * bug["val_mse"],
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(203)
    seq = torch.randint(1, 21, (2000, 12), generator=g)
    hydro = torch.randn(21, generator=g)
    rt = hydro[seq].sum(1) + 0.3 * hydro[seq[:, -3:]].sum(1)
    rt = (rt - rt.mean()) / rt.std()
    (st, yt), (sv, yv) = (seq[:1600], rt[:1600]), (seq[1600:], rt[1600:])
    torch.manual_seed(1)
    model = RTModel(relu_out=bug)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for s, y in loader(st, yt, batch_size=64):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(s).squeeze(1), y)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = model(sv).squeeze(1)
    return {"val_mse": nn.functional.mse_loss(pred, yv).item(), "pred_std": pred.std().item()}
