"""The char-RNN name classifier, instantiated twice, with the optimizer built on the first instance.

Source: spro/practical-pytorch issue #9, "char-rnn-classification parameters update method confusion"
(https://github.com/spro/practical-pytorch/issues/9). The reporter replaced the tutorial's manual update
(`p.data.add_(-learning_rate, p.grad.data)`) by `optimizer = torch.optim.SGD(rnn.parameters(), lr=0.005)` and
`optimizer.step()`: "loss is big, and loss flow up and down, do not diminish". The author (spro): "I have the
model instantiated twice - once directly after the RNN class, and once before the main `for epoch in ...`
loop. Try moving the optimizer to below the second one, so the params aren't reset."
Data: synthetic surnames of five origins (own letter frequencies) instead of data/names/*.txt; the RNN
(i2h, i2o, LogSoftmax), NLLLoss, SGD lr=0.005 and one-name-per-step loop are the tutorial's.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from ...harness import case
from ._common import moved, names, snapshot


class RNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(input_size + hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        combined = torch.cat((input, hidden), 1)
        hidden = self.i2h(combined)
        output = self.softmax(self.i2o(combined))
        return output, hidden

    def initHidden(self) -> torch.Tensor:
        return torch.zeros(1, self.hidden_size)


def line_to_tensor(line: str, alphabet: str) -> torch.Tensor:
    t = torch.zeros(len(line), 1, len(alphabet))
    for i, ch in enumerate(line):
        t[i, 0, alphabet.index(ch)] = 1
    return t


def evaluate(rnn: RNN, lines: list[torch.Tensor], labels: torch.Tensor) -> float:
    correct = 0
    with torch.no_grad():
        for line, y in zip(lines, labels.tolist()):
            hidden = rnn.initHidden()
            for i in range(line.size(0)):
                output, hidden = rnn(line[i], hidden)
            correct += int(output.argmax(1).item() == y)
    return correct / len(lines)


@case(
    name="rw-stale-optimizer-char-rnn-reinstantiated",
    source="https://github.com/spro/practical-pytorch/issues/9",
    title="char-RNN name classifier: SGD built on the first RNN instance, training uses the second",
    expect="optimizer-stale-params",
    verify=lambda bug, fixed: (
        bug["rnn_moved"] == 0.0 and bug["val_acc"] < 0.35 and fixed["val_acc"] > bug["val_acc"] + 0.2
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    all_names, labels, alphabet = names(700, n_classes=5, seed=9)
    lines = [line_to_tensor(s, alphabet) for s in all_names]
    train_idx, val_lines, val_labels = list(range(500)), lines[500:], labels[500:]
    n_hidden = 64
    rnn = RNN(len(alphabet), n_hidden, 5)
    learning_rate = 0.005
    optimizer = torch.optim.SGD(rnn.parameters(), lr=learning_rate)
    criterion = nn.NLLLoss()
    if bug:
        rnn = RNN(len(alphabet), n_hidden, 5)  # the second instantiation, before the training loop
    before = snapshot(rnn)
    rng = random.Random(0)

    def train(category_tensor: torch.Tensor, line_tensor: torch.Tensor) -> float:
        hidden = rnn.initHidden()
        optimizer.zero_grad()
        for i in range(line_tensor.size()[0]):
            output, hidden = rnn(line_tensor[i], hidden)
        loss = criterion(output, category_tensor)
        loss.backward()
        optimizer.step()
        return loss.item()

    with nb.watch(rnn, optimizer):
        for _it in range(2500):
            j = rng.choice(train_idx)
            loss = train(labels[j : j + 1], lines[j])
    return {"val_acc": evaluate(rnn, val_lines, val_labels), "rnn_moved": moved(before, rnn), "loss": loss}
