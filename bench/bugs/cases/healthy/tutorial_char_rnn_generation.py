"""NLP From Scratch: Generating Names with a Character-Level RNN: an RNN whose i2h, i2o and o2o layers see
the language (one-hot), the current letter and the hidden state, with Dropout(0.1) and LogSoftmax; the
NLLLoss of every next letter is summed over the name, then `rnn.zero_grad()` ... `loss.backward()` and a
hand-written update with learning_rate = 0.0005, one random name per step.

Source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/char_rnn_generation_tutorial.py
The tutorial's loss (per letter) falls from ~4 and plateaus early, around 2.5, while samples become
plausible names: a character-level model whose loss flattens quickly is normal.
Scaled: five made-up languages instead of the 18 name files; 800 names instead of 100000. No optimizer:
a user watches it with `nbdebug.watch(rnn)`.
"""

from __future__ import annotations

import random
import string

import torch
from torch import nn

from ...harness import case
from ._common import mean, synthetic_names

all_letters = string.ascii_letters + " .,;'-"
n_letters = len(all_letters) + 1  # plus EOS marker


class RNN(nn.Module):
    def __init__(self, n_categories: int, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(n_categories + input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(n_categories + input_size + hidden_size, output_size)
        self.o2o = nn.Linear(hidden_size + output_size, output_size)
        self.dropout = nn.Dropout(0.1)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, category: torch.Tensor, input: torch.Tensor, hidden: torch.Tensor) -> tuple:
        input_combined = torch.cat((category, input, hidden), 1)
        hidden = self.i2h(input_combined)
        output = self.i2o(input_combined)
        output_combined = torch.cat((hidden, output), 1)
        output = self.o2o(output_combined)
        output = self.dropout(output)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self) -> torch.Tensor:
        return torch.zeros(1, self.hidden_size)


@case(
    name="healthy-tut-char-rnn-generate-batch1",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/char_rnn_generation_tutorial.py",
    title="Char-RNN name generator, summed per-letter NLLLoss, one name per step, lr=0.0005 by hand",
    healthy=True,
    verify=lambda m: m["last_loss"] < m["first_loss"] - 0.3,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    rng = random.Random(0)
    category_lines = synthetic_names(200, seed=2)
    all_categories = list(category_lines)
    n_categories = len(all_categories)

    def categoryTensor(category: str) -> torch.Tensor:
        tensor = torch.zeros(1, n_categories)
        tensor[0][all_categories.index(category)] = 1
        return tensor

    def inputTensor(line: str) -> torch.Tensor:
        tensor = torch.zeros(len(line), 1, n_letters)
        for li in range(len(line)):
            tensor[li][0][all_letters.find(line[li])] = 1
        return tensor

    def targetTensor(line: str) -> torch.Tensor:
        letter_indexes = [all_letters.find(line[li]) for li in range(1, len(line))]
        letter_indexes.append(n_letters - 1)  # EOS
        return torch.LongTensor(letter_indexes)

    def randomTrainingExample() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        category = rng.choice(all_categories)
        line = rng.choice(category_lines[category])
        return categoryTensor(category), inputTensor(line), targetTensor(line)

    rnn = RNN(n_categories, n_letters, 128, n_letters)
    criterion = nn.NLLLoss()
    learning_rate = 0.0005

    def train(category_tensor, input_line_tensor, target_line_tensor) -> float:
        target_line_tensor.unsqueeze_(-1)
        hidden = rnn.initHidden()
        rnn.zero_grad()
        loss = 0
        for i in range(input_line_tensor.size(0)):
            output, hidden = rnn(category_tensor, input_line_tensor[i], hidden)
            loss += criterion(output, target_line_tensor[i])
        loss.backward()
        for p in rnn.parameters():
            p.data.add_(p.grad.data, alpha=-learning_rate)
        return loss.item() / input_line_tensor.size(0)

    losses = []
    with nb.watch(rnn):
        for _iter in range(800):
            losses.append(train(*randomTrainingExample()))
    return {"first_loss": mean(losses[:100]), "last_loss": mean(losses[-100:])}
