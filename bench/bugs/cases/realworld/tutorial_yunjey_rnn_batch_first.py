"""Healthy: yunjey/pytorch-tutorial's MNIST RNN with `batch_first=True` and (batch, seq, feature) input.

Source: yunjey/pytorch-tutorial, tutorials/02-intermediate/recurrent_neural_network/main.py
(https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/02-intermediate/recurrent_neural_network/main.py):
images reshaped to (batch, sequence_length, input_size), `nn.LSTM(input_size, hidden_size, num_layers,
batch_first=True)`, the last time step `out[:, -1, :]` into a Linear, CrossEntropyLoss, Adam lr=0.01, batch 100.
The layout matches the LSTM: nbdebug must stay silent.
Data: the digits as 8 rows of 8 pixels (sequence_length = input_size = 8); hidden 64, 2 layers, 3 epochs.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits, loader, split
from ...harness import case

sequence_length, input_size, hidden_size, num_layers, num_classes = 8, 8, 64, 2, 10


class RNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])


@case(
    name="rw-healthy-rnn-batch-first-true",
    source="https://github.com/yunjey/pytorch-tutorial/blob/master/tutorials/02-intermediate/recurrent_neural_network/main.py",
    title="MNIST row-by-row LSTM with batch_first=True and (batch, seq, feature) input",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.85,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = RNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for images, labels in loader(xt, yt, batch_size=100):
                images = images.reshape(-1, sequence_length, input_size)
                loss = criterion(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(xv.reshape(-1, sequence_length, input_size)).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "loss": loss.item()}
