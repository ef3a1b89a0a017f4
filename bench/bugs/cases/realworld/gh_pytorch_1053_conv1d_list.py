"""A Kim-style text CNN whose three Conv1d filters (widths 3, 4, 5) sit in a plain Python list.

Source: pytorch/pytorch issue #1053, "submodules defined in list are not auto-registered as parameters"
(https://github.com/pytorch/pytorch/issues/1053). The reporter's `Net.__init__` held
`self.conv1d = [nn.Conv1d(WORD_VEC_SIZE, 1, 3), nn.Conv1d(WORD_VEC_SIZE, 1, 4), nn.Conv1d(WORD_VEC_SIZE, 1, 5)]`;
after `a.cuda()` the convolutions were still on the CPU: they were not registered, so not in parameters()
either. Fix (apaszke): "This is expected. Use `nn.ModuleList`."
Data: synthetic sentences (keyword tokens of the class among filler) embedded with a fixed random word-vector
table standing in for pretrained word vectors; the three one-filter convolutions, max-over-time pooling and
linear classifier are kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen, moved, snapshot, token_classes

WORD_VEC_SIZE = 16


class Net(nn.Module):
    def __init__(self, registered: bool) -> None:
        super().__init__()
        convs = [
            nn.Conv1d(WORD_VEC_SIZE, 1, 3),
            nn.Conv1d(WORD_VEC_SIZE, 1, 4),
            nn.Conv1d(WORD_VEC_SIZE, 1, 5),
        ]
        self.conv1d = nn.ModuleList(convs) if registered else convs
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, WORD_VEC_SIZE, seq)
        feats = [F.relu(conv(x)).max(dim=2)[0] for conv in self.conv1d]
        return self.fc(torch.cat(feats, 1))


@case(
    name="rw-unregistered-textcnn-conv1d-list",
    source="https://github.com/pytorch/pytorch/issues/1053",
    title="text CNN whose Conv1d filters live in a plain list: the filters never train",
    expect="unregistered-submodule",
    verify=lambda bug, fixed: (
        bug["conv_moved"] == 0.0 and fixed["conv_moved"] > 1e-3 and fixed["val_acc"] > bug["val_acc"] + 0.1
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    tokens, labels = token_classes(1200, seq_len=20, vocab=50, n_classes=2, seed=1053)
    vectors = torch.randn(50, WORD_VEC_SIZE, generator=gen(1))  # fixed "pretrained" word vectors
    x = vectors[tokens].transpose(1, 2)  # (n, WORD_VEC_SIZE, seq)
    xt, yt, xv, yv = x[:1000], labels[:1000], x[1000:], labels[1000:]
    model = Net(registered=not bug)
    convs = list(model.conv1d)
    before = snapshot(*convs)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 50):
                idx = perm[i : i + 50]
                optimizer.zero_grad()
                loss = criterion(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "conv_moved": moved(before, *convs), "loss": loss.item()}
