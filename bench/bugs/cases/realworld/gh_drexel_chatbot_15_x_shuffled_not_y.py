"""A question classifier (Embedding -> LSTM -> softmax) whose training script shuffles the questions but not
their labels.

Source: DrexelChatbotGroup/DrexelChatbot issue #15, "Incomplete randomization"
(https://github.com/DrexelChatbotGroup/DrexelChatbot/issues/15): "gac_training_tests.py randomizes the order of
the x data, but not the y data. This invalidates the required association between them." Fixed by shuffling a
list of indexes and rebuilding both `x` and `y` from it (tools/gac_training_tests.py).
The original is a Keras script (Embedding(top_words, 64) -> LSTM(50) -> Dense(num_of_gas, softmax), rmsprop,
categorical cross-entropy, batch 64, 10% held out); this is the same program in PyTorch (RMSprop lr=1e-3,
Keras's default). Data: synthetic questions of six answer categories (keyword tokens among filler, 25 tokens).
"""

from __future__ import annotations

import random

import torch
from torch import nn

from ...harness import case
from ._common import token_classes


class GAC(nn.Module):
    def __init__(self, top_words: int, embedding_vector_length: int, num_of_gas: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(top_words, embedding_vector_length)
        self.lstm = nn.LSTM(embedding_vector_length, 50, batch_first=True)
        self.dense = nn.Linear(50, num_of_gas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.dense(out[:, -1])


@case(
    name="rw-labels-misaligned-x-shuffled-not-y",
    source="https://github.com/DrexelChatbotGroup/DrexelChatbot/issues/15",
    title="question classifier: the training script shuffles x but not y before the train/test split",
    expect="labels-misaligned",
    verify=lambda bug, fixed: bug["test_acc"] < 0.3 and fixed["test_acc"] > 0.8,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    tokens, labels = token_classes(1000, seq_len=25, vocab=100, n_classes=6, seed=15)
    x, y = tokens.tolist(), labels.tolist()
    rng = random.Random(0)
    if bug:
        rng.shuffle(x)
    else:
        indexes = list(range(len(x)))
        rng.shuffle(indexes)
        x, y = [x[i] for i in indexes], [y[i] for i in indexes]
    x, y = torch.tensor(x), torch.tensor(y)
    split_point = int(len(x) * 0.1)
    x_test, x_train, y_test, y_train = x[:split_point], x[split_point:], y[:split_point], y[split_point:]
    model = GAC(100, 64, 6)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(8):
            perm = torch.randperm(len(x_train))  # Keras's fit shuffles each epoch
            for i in range(0, len(x_train), 64):
                idx = perm[i : i + 64]
                optimizer.zero_grad()
                loss = criterion(model(x_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        test_acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    return {"test_acc": test_acc, "loss": loss.item()}
