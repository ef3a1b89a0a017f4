"""IMDB-style sentiment GRU fed (batch, seq, emb) tensors while the GRU expects (seq, batch, emb).

Source: pytorch/pytorch issue #2674, "Sentiment analysis with LSTM in IMDB dataset"
(https://github.com/pytorch/pytorch/issues/2674). The model embeds (batch, 150) token ids, runs
`nn.GRU(input_size=EMBEDSIZE, hidden_size=NUMHIDDEN, num_layers=1)` and classifies `x[:, -1, :]`; ilkarman: "I
think batch_first should be set to True to match the input format"; soumith: "either that, or even better,
transpose the data that the generator yields to (150, BATCHSIZE)". The fix used here: `batch_first=True`.
Data: synthetic two-class reviews (sentiment keywords among filler, 40 tokens) instead of IMDB; the embedding /
GRU / last-step Linear model and Adam(lr=0.01, betas=(0.9, 0.999)), batch 64, 3 epochs of the benchmark notebook
the comment links, scaled to a 32-dim embedding and hidden state; the initial state is left to its default.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import token_classes


class SymbolModule(nn.Module):
    def __init__(self, maxfeatures: int, embedsize: int, numhidden: int, batch_first: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings=maxfeatures, embedding_dim=embedsize)
        self.gru = nn.GRU(input_size=embedsize, hidden_size=numhidden, num_layers=1, batch_first=batch_first)
        self.l_out = nn.Linear(in_features=numhidden, out_features=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding(x)
        x, h = self.gru(x)
        x = x[:, -1, :].squeeze()
        return self.l_out(x)


@case(
    name="rw-rnn-batch-first-missing-imdb-gru",
    source="https://github.com/pytorch/pytorch/issues/2674",
    title="sentiment GRU without batch_first fed (batch, seq, emb): time and batch axes swapped",
    expect="rnn-batch-first-mismatch",
    verify=lambda bug, fixed: fixed["val_acc"] > 0.85 and bug["val_acc"] < fixed["val_acc"] - 0.2,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = token_classes(1400, seq_len=40, vocab=100, n_classes=2, seed=2674)
    xt, yt, xv, yv = x[:1200], y[:1200], x[1200:], y[1200:]
    sym = SymbolModule(100, 32, 32, batch_first=not bug)
    optimizer = torch.optim.Adam(sym.parameters(), lr=0.01, betas=(0.9, 0.999))
    criterion = nn.CrossEntropyLoss()
    with nb.watch(sym, optimizer):
        for _epoch in range(3):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt) - 63, 64):
                idx = perm[i : i + 64]
                optimizer.zero_grad()
                loss = criterion(sym(xt[idx]), yt[idx])
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        correct = sum(int((sym(xv[i : i + 64]).argmax(1) == yv[i : i + 64]).sum()) for i in range(0, 192, 64))
    return {"val_acc": correct / 192, "loss": loss.item()}
