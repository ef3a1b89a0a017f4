"""MNIST row-by-row LSTM classifier built without `batch_first` but fed (batch, seq, feature) tensors.

Source: pytorch/pytorch issue #1538, "different result on LSTM whether using batch_first"
(https://github.com/pytorch/pytorch/issues/1538): "I train a simple LSTM to do classifier on MNIST ... whether
I use batch_first, I get the different result". The reporter's `Rnn` builds `nn.LSTM(in_dim, hidden_dim,
n_layer)` with `batch_first=True` commented out, feeds images squeezed to (batch, 28, 28) and classifies
`out[:, -1, :]`: the LSTM then runs along the batch (examples are time steps) and mixes examples. Fix: restore
`batch_first=True`.
Data: the digits as 8 rows of 8 pixels; hidden 64, 2 layers, Adam lr=1e-2, batch 100 as in the report; 3 epochs.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from ...data import digits, loader, split
from ...harness import case


class Rnn(nn.Module):
    def __init__(self, in_dim: int, hidden_dim: int, n_layer: int, n_class: int, batch_first: bool) -> None:
        super().__init__()
        self.n_layer, self.hidden_dim = n_layer, hidden_dim
        self.lstm = nn.LSTM(in_dim, hidden_dim, n_layer, batch_first=batch_first)
        self.classifier = nn.Linear(hidden_dim, n_class)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        out = out[:, -1, :]
        return self.classifier(out)


@case(
    name="rw-rnn-batch-first-missing-mnist-rows",
    source="https://github.com/pytorch/pytorch/issues/1538",
    title="LSTM without batch_first fed (batch, seq, feature): it steps through the batch, mixing examples",
    expect="rnn-batch-first-mismatch",
    verify=lambda bug, fixed: fixed["val_acc"] > 0.85 and bug["val_acc"] < fixed["val_acc"] - 0.2,
    quick=True,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = Rnn(8, 64, 2, 10, batch_first=not bug)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for img, label in loader(xt, yt, batch_size=100):
                img = img.view(-1, 8, 8)
                out = model(img)
                loss = criterion(out, label)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(xv[i : i + 100].view(-1, 8, 8)).argmax(1) == yv[i : i + 100]).sum())
            for i in range(0, len(xv), 100)
        )
    return {"val_acc": correct / len(xv), "loss": loss.item()}
