"""Language Modeling with nn.Transformer: TransformerModel (Embedding * sqrt(d_model), PositionalEncoding,
nn.TransformerEncoder under a causal square subsequent mask, Linear head), batchify into 20 columns,
bptt=35, CrossEntropyLoss, SGD lr=5.0, clip_grad_norm_(0.5) every step, StepLR(step_size=1, gamma=0.95)
stepped once per epoch after an evaluate() pass in eval mode under no_grad.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/transformer_tutorial.py
The tutorial reports the loss falling from ~8 to ~5.5 within the first epoch and the validation loss improving
each epoch; lr=5.0 is large, but clipping at 0.5 keeps each update small. The causal mask is the one forward()
builds when none is given, added by pytorch/tutorials PR #2662 (fixing issue #2478, "TransformerEncoder is not
causal"). Scaled: a word-level corpus of 200 Zipf-distributed words with learnable successors instead of
WikiText-2, emsize = d_hid = 32 instead of 200, 3 epochs of 25 batches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import TransformerEncoder, TransformerEncoderLayer

from ...harness import case
from ._common import zipf_corpus


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(x + self.pe[: x.size(0)])


class TransformerModel(nn.Module):
    def __init__(self, ntoken: int, d_model: int, nhead: int, d_hid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        encoder_layers = TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = TransformerEncoder(encoder_layers, nlayers, enable_nested_tensor=False)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)
        self.init_weights()

    def init_weights(self) -> None:
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.linear.bias.data.zero_()
        self.linear.weight.data.uniform_(-initrange, initrange)

    def forward(self, src: Tensor, src_mask: Tensor | None = None) -> Tensor:
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        if src_mask is None:
            src_mask = nn.Transformer.generate_square_subsequent_mask(len(src))
        output = self.transformer_encoder(src, src_mask)
        return self.linear(output)


def batchify(data: Tensor, bsz: int) -> Tensor:
    seq_len = data.size(0) // bsz
    data = data[: seq_len * bsz]
    return data.view(bsz, seq_len).t().contiguous()


@case(
    name="healthy-tut-transformer-lm-sgd5-clip",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/transformer_tutorial.py",
    title="TransformerEncoder word LM, SGD lr=5.0, clip_grad_norm_(0.5), StepLR per epoch, eval each epoch",
    healthy=True,
    verify=lambda m: m["val_loss"] < m["first_loss"] - 1.0 and m["val_loss"] < math.log(200) - 1.0,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    ntokens, bptt, batch_size, eval_batch_size = 200, 35, 20, 10
    corpus = zipf_corpus(17500 + 3500 + 1, ntokens, seed=7)
    train_data = batchify(corpus[:17501], batch_size)
    val_data = batchify(corpus[17501:], eval_batch_size)

    def get_batch(source: Tensor, i: int) -> tuple[Tensor, Tensor]:
        seq_len = min(bptt, len(source) - 1 - i)
        return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)

    model = TransformerModel(ntokens, 32, 2, 32, 2, 0.2)
    criterion = nn.CrossEntropyLoss()
    lr = 5.0
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.95)
    losses: list[float] = []

    def train(model: nn.Module) -> None:
        model.train()
        for _batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
            data, targets = get_batch(train_data, i)
            output = model(data)
            loss = criterion(output.view(-1, ntokens), targets)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            optimizer.step()
            losses.append(loss.item())

    def evaluate(model: nn.Module, eval_data: Tensor) -> float:
        model.eval()
        total_loss = 0.0
        with torch.no_grad():
            for i in range(0, eval_data.size(0) - 1, bptt):
                data, targets = get_batch(eval_data, i)
                seq_len = data.size(0)
                output = model(data)
                total_loss += seq_len * criterion(output.view(-1, ntokens), targets).item()
        return total_loss / (len(eval_data) - 1)

    with nb.watch(model, optimizer):
        for _epoch in range(1, 4):
            train(model)
            val_loss = evaluate(model, val_data)
            scheduler.step()
    return {"first_loss": losses[0], "last_loss": losses[-1], "val_loss": val_loss}
