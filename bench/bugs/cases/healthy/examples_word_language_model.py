"""pytorch/examples word_language_model with its defaults: RNNModel('LSTM') (Embedding, Dropout, 2-layer
LSTM, Linear decoder, log_softmax), NLLLoss, batch 20 columns, bptt 35, hidden state repackaged (detached)
every batch, `model.zero_grad()`, `clip_grad_norm_(model.parameters(), 0.25)`, and the hand-written update
`p.data.add_(p.grad, alpha=-lr)` with lr=20, divided by 4 whenever the validation loss does not improve.

Source: https://github.com/pytorch/examples/blob/main/word_language_model/main.py
The example reports the validation perplexity falling every epoch (to ~140 on WikiText-2 after 6 epochs);
lr=20 is only sane because each step's gradient is clipped to norm 0.25.
Scaled: a word-level corpus of 200 Zipf-distributed words with learnable successors instead of WikiText-2;
emsize = nhid = 32 instead of 200; 4 epochs of 30 batches. No optimizer (the default, without
--use-optimizer): a user watches it with `nbdebug.watch(model)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import zipf_corpus


class RNNModel(nn.Module):
    def __init__(self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def init_weights(self) -> None:
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input: torch.Tensor, hidden: tuple) -> tuple[torch.Tensor, tuple]:
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = next(self.parameters())
        return (
            weight.new_zeros(self.nlayers, bsz, self.nhid),
            weight.new_zeros(self.nlayers, bsz, self.nhid),
        )


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


@case(
    name="healthy-ex-word-lm-lstm-manual-sgd20",
    source="https://github.com/pytorch/examples/blob/main/word_language_model/main.py",
    title="Word-level LSTM LM, hand-written SGD with lr=20 after clip_grad_norm_(0.25), lr/4 on plateaus",
    healthy=True,
    verify=lambda m: m["val_loss"] < math.log(200) - 1.0 and m["val_loss"] < m["first_loss"] - 1.0,
    category="pytorch-examples",
)
def program(bug: bool, nb) -> dict[str, float]:
    ntokens, bptt, batch_size, eval_batch_size, clip = 200, 35, 20, 10, 0.25
    corpus = zipf_corpus(21000 + 3500, ntokens, seed=11)
    train_data = batchify(corpus[:21000], batch_size)
    val_data = batchify(corpus[21000:], eval_batch_size)
    model = RNNModel("LSTM", ntokens, 32, 32, 2, 0.2)
    criterion = nn.NLLLoss()
    losses: list[float] = []

    def get_batch(source: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        seq_len = min(bptt, len(source) - 1 - i)
        return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].view(-1)

    def evaluate(data_source: torch.Tensor) -> float:
        model.eval()
        total_loss = 0.0
        hidden = model.init_hidden(eval_batch_size)
        with torch.no_grad():
            for i in range(0, data_source.size(0) - 1, bptt):
                data, targets = get_batch(data_source, i)
                output, hidden = model(data, hidden)
                hidden = repackage_hidden(hidden)
                total_loss += len(data) * criterion(output, targets).item()
        return total_loss / (len(data_source) - 1)

    def train(lr: float) -> None:
        model.train()
        hidden = model.init_hidden(batch_size)
        for _batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            losses.append(loss.item())

    lr, best_val_loss = 20.0, None
    with nb.watch(model):
        for _epoch in range(1, 5):
            train(lr)
            val_loss = evaluate(val_data)
            if not best_val_loss or val_loss < best_val_loss:
                best_val_loss = val_loss
            else:
                lr /= 4.0
    return {"first_loss": losses[0], "val_loss": best_val_loss, "final_lr": lr}
