"""A Transformer text classifier whose model ends in softmax, trained with nn.NLLLoss.

Source: AnubhavGupta3377/Text-Classification-Models-Pytorch issue #9, "NLLLoss"
(https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9): "the input of nn.NLLloss() is
after logsoftmax according to this manual ... however, here only softmax is provided in model.py therefore, the
loss is always negative. I only check the Transformer model." NLLLoss of probabilities is -p[target]: it stays in
[-1, 0] and its gradient vanishes exactly where the model is wrong and confident.
Fix: `nn.LogSoftmax` (or CrossEntropyLoss on the logits).
Data: synthetic sentences of four classes (keyword tokens among filler) instead of AG News; a one-layer
Transformer encoder with learned positions, mean pooling, and the repository's Adam(lr=3e-4), batch 64.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import token_classes


class Transformer(nn.Module):
    def __init__(self, vocab: int, d_model: int, n_classes: int, log: bool) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, 32, d_model))
        layer = nn.TransformerEncoderLayer(
            d_model, nhead=2, dim_feedforward=64, dropout=0.1, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, 1)
        self.fc = nn.Linear(d_model, n_classes)
        self.softmax = nn.LogSoftmax(dim=1) if log else nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.src_embed(x) + self.pos[:, : x.size(1)])
        return self.softmax(self.fc(h.mean(1)))


@case(
    name="rw-softmax-then-nllloss-transformer-text",
    source="https://github.com/AnubhavGupta3377/Text-Classification-Models-Pytorch/issues/9",
    title="Transformer text classifier: model ends in Softmax, loss is NLLLoss (the loss is always negative)",
    expect="softmax-before-ce",
    verify=lambda bug, fixed: (
        bug["final_loss"] < 0 and fixed["final_loss"] > 0 and fixed["val_acc"] > bug["val_acc"] + 0.05
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = token_classes(1500, seq_len=24, vocab=60, n_classes=4, seed=9)
    xt, yt, xv, yv = x[:1200], y[:1200], x[1200:], y[1200:]
    model = Transformer(60, 32, 4, log=not bug)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    loss_fn = nn.NLLLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            model.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 64):
                idx = perm[i : i + 64]
                optimizer.zero_grad()
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(xv).argmax(1) == yv).float().mean().item()
    return {"val_acc": val_acc, "final_loss": loss.item()}
