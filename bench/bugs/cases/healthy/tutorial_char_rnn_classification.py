"""NLP From Scratch: Classifying Names with a Character-Level RNN: a hand-written RNN (i2h, h2h, h2o,
LogSoftmax) fed one-hot letters one at a time, NLLLoss on the last output, trained on one random
(language, name) example per step with `rnn.zero_grad()` and a hand-written update
`p.data.add_(p.grad.data, alpha=-learning_rate)`, learning_rate = 0.005.

Source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/char_rnn_classification_tutorial.py
The tutorial's loss plot falls from ~2.9 (ln 18) and the confusion matrix shows most names classified
right; per-example losses jump between ~0 and ~5, which batch size 1 explains.
Scaled: five made-up languages built from their own syllables instead of the 18 name files; 1200 examples
instead of 100000. No optimizer: a user watches it with `nbdebug.watch(rnn)`.
"""

from __future__ import annotations

import random
import string

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import mean, synthetic_names

all_letters = string.ascii_letters + " .,;'"
n_letters = len(all_letters)


def lineToTensor(line: str) -> torch.Tensor:
    tensor = torch.zeros(len(line), 1, n_letters)
    for li, letter in enumerate(line):
        tensor[li][0][all_letters.find(letter)] = 1
    return tensor


class RNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(input_size, hidden_size)
        self.h2h = nn.Linear(hidden_size, hidden_size)
        self.h2o = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.tanh(self.i2h(input) + self.h2h(hidden))
        output = self.softmax(self.h2o(hidden))
        return output, hidden

    def initHidden(self) -> torch.Tensor:
        return torch.zeros(1, self.hidden_size)


@case(
    name="healthy-tut-char-rnn-classify-batch1",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/char_rnn_classification_tutorial.py",
    title="Char-RNN name classifier, one example per step (batch size 1), hand-written SGD update",
    healthy=True,
    verify=lambda m: m["last_loss"] < m["first_loss"] - 0.2 and m["acc"] > 0.6,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    rng = random.Random(0)
    category_lines = synthetic_names(200, seed=1)
    all_categories = list(category_lines)
    rnn = RNN(n_letters, 128, len(all_categories))
    criterion = nn.NLLLoss()
    learning_rate = 0.005

    def randomTrainingExample() -> tuple[str, str, torch.Tensor, torch.Tensor]:
        category = rng.choice(all_categories)
        line = rng.choice(category_lines[category])
        category_tensor = torch.tensor([all_categories.index(category)], dtype=torch.long)
        return category, line, category_tensor, lineToTensor(line)

    def train(category_tensor: torch.Tensor, line_tensor: torch.Tensor) -> tuple[torch.Tensor, float]:
        hidden = rnn.initHidden()
        rnn.zero_grad()
        for i in range(line_tensor.size()[0]):
            output, hidden = rnn(line_tensor[i], hidden)
        loss = criterion(output, category_tensor)
        loss.backward()
        for p in rnn.parameters():
            p.data.add_(p.grad.data, alpha=-learning_rate)
        return output, loss.item()

    losses = []
    with nb.watch(rnn):
        for _iter in range(1200):
            _c, _l, category_tensor, line_tensor = randomTrainingExample()
            _output, loss = train(category_tensor, line_tensor)
            losses.append(loss)
    correct = 0
    with torch.no_grad():
        for _i in range(300):
            _c, _l, category_tensor, line_tensor = randomTrainingExample()
            hidden = rnn.initHidden()
            for i in range(line_tensor.size()[0]):
                output, hidden = rnn(line_tensor[i], hidden)
            correct += int(output.topk(1)[1].item() == category_tensor.item())
    return {"first_loss": mean(losses[:150]), "last_loss": mean(losses[-150:]), "acc": correct / 300}
