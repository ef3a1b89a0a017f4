"""Healthy: pytorch/examples word_language_model, ordered (never shuffled) batches into a seq-first LSTM.

Source: pytorch/examples, word_language_model/main.py
(https://github.com/pytorch/examples/blob/main/word_language_model/main.py): the token stream is `batchify`-ed
into (seq, batch) columns and read in order with `get_batch(source, i)` (bptt 35), the LSTM is built without
batch_first and fed (seq, batch, emb) tensors, hidden states are carried and `repackage_hidden`-ed, gradients
clipped to 0.25 and applied by hand (`p.data.add_(p.grad, alpha=-lr)`, lr=20), NLLLoss on log_softmax. Order
matters here and the layout is right: nbdebug must stay silent.
Data: a synthetic token stream from a sparse Markov chain over 40 tokens instead of WikiText-2; emsize = nhid
= 32, 2 layers, batch 20, 6 epochs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen


class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, input: torch.Tensor, hidden: tuple) -> tuple[torch.Tensor, tuple]:
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int) -> tuple:
        weight = next(self.parameters())
        return (
            weight.new_zeros(self.nlayers, bsz, self.nhid),
            weight.new_zeros(self.nlayers, bsz, self.nhid),
        )


def markov_stream(n: int, ntoken: int, seed: int) -> torch.Tensor:
    g = gen(seed)
    nxt = torch.randint(0, ntoken, (ntoken, 2), generator=g)  # each token is followed by one of two tokens
    out = torch.empty(n, dtype=torch.long)
    t = 0
    for i in range(n):
        out[i] = t
        t = int(nxt[t, int(torch.rand(1, generator=g) < 0.3)])
    return out


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


@case(
    name="rw-healthy-word-language-model-ordered",
    source="https://github.com/pytorch/examples/blob/main/word_language_model/main.py",
    title="word-level LSTM LM: ordered bptt batches, seq-first LSTM, manual SGD lr=20 with clipping",
    healthy=True,
    verify=lambda m: m["val_loss"] < 0.5 * math.log(40),
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    ntokens, bptt, lr, clip = 40, 35, 20.0, 0.25
    stream = markov_stream(16000, ntokens, seed=1111)
    train_data, val_data = batchify(stream[:14000], 20), batchify(stream[14000:], 10)
    model = RNNModel(ntokens, 32, 32, 2)
    criterion = nn.NLLLoss()

    def get_batch(source: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        seq_len = min(bptt, len(source) - 1 - i)
        return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)

    with nb.watch(model):
        for _epoch in range(6):
            model.train()
            hidden = model.init_hidden(20)
            for i in range(0, train_data.size(0) - 1, bptt):
                data, targets = get_batch(train_data, i)
                model.zero_grad()
                hidden = repackage_hidden(hidden)
                output, hidden = model(data, hidden)
                loss = criterion(output, targets)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-lr)
    model.eval()
    with torch.no_grad():
        hidden, total = model.init_hidden(10), 0.0
        for i in range(0, val_data.size(0) - 1, bptt):
            data, targets = get_batch(val_data, i)
            output, hidden = model(data, hidden)
            total += len(data) * criterion(output, targets).item()
    return {"val_loss": total / (len(val_data) - 1), "loss": loss.item()}
