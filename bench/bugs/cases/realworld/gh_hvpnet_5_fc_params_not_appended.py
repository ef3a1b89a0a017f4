"""A NER tagger whose classification layer's parameter group is built but never handed to the optimizer.

Source: zjunlp/HVPNeT issue #5, "Not putting parameters into optimizer but still trainable"
(https://github.com/zjunlp/HVPNeT/issues/5). In modules/train.py the encoder's parameter groups are each
followed by `parameters.append(params)`, but the group built for the `fc` (and `crf`) layers is not, so the
AdamW optimizer never updates them: "the `parameters.append(params)` should be added after line 499,
otherwise crf and fc will not be trained" (maintainer: "You're right ... we found this issue before and fixed
it but forgot to push it").
Data: synthetic token sequences whose tags are given by keyword tokens; a small Transformer encoder stands in
for BERT and a per-token softmax for the CRF. The parameter groups (encoder at its lr, fc at 5e-2) and AdamW
follow the original.
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case
from ._common import gen, moved, snapshot

N_TAGS = 5


class Tagger(nn.Module):
    def __init__(self, vocab: int, d: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(64, d)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True), 1
        )
        self.fc = nn.Linear(d, N_TAGS)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.size(1))
        return self.fc(self.encoder(self.embed(tokens) + self.pos(positions)))


def ner_data(n: int, seq_len: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and per-token tags: tokens 1..(N_TAGS-1)*4 are entity words of tag 1 + (id-1) // 4; a word
    right after an entity word of tag t continues it (tag t); everything else is tag 0."""
    g = gen(seed)
    x = torch.randint(20, vocab, (n, seq_len), generator=g)
    ent = torch.rand(n, seq_len, generator=g) < 0.2
    x[ent] = torch.randint(1, 1 + (N_TAGS - 1) * 4, (int(ent.sum()),), generator=g)
    y = torch.zeros(n, seq_len, dtype=torch.long)
    is_ent = (x >= 1) & (x < 1 + (N_TAGS - 1) * 4)
    y[is_ent] = 1 + (x[is_ent] - 1) // 4
    follow = torch.zeros_like(is_ent)
    follow[:, 1:] = is_ent[:, :-1] & ~is_ent[:, 1:]
    y[:, 1:][follow[:, 1:]] = y[:, :-1][follow[:, 1:]]
    return x, y


@case(
    name="rw-params-not-in-optimizer-ner-fc-group",
    source="https://github.com/zjunlp/HVPNeT/issues/5",
    title="NER tagger: the fc layer's parameter group is never appended to the AdamW parameter list",
    expect="params-not-in-optimizer",
    verify=lambda bug, fixed: (
        bug["fc_moved"] == 0.0 and fixed["fc_moved"] > 1e-3 and fixed["tag_acc"] > bug["tag_acc"] + 0.03
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = ner_data(900, seq_len=16, vocab=60, seed=5)
    xt, yt, xv, yv = x[:750], y[:750], x[750:], y[750:]
    model = Tagger(60, 32)
    parameters = []
    params = {"lr": 1e-3, "weight_decay": 1e-2}
    params["params"] = [p for n, p in model.named_parameters() if not n.startswith("fc")]
    parameters.append(params)
    params = {"lr": 5e-2, "weight_decay": 1e-2}
    params["params"] = list(model.fc.parameters())
    if not bug:
        parameters.append(params)
    optimizer = torch.optim.AdamW(parameters)
    before = snapshot(model.fc)
    criterion = nn.CrossEntropyLoss()
    with nb.watch(model, optimizer):
        for _epoch in range(8):
            model.train()
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt), 32):
                idx = perm[i : i + 32]
                optimizer.zero_grad()
                logits = model(xt[idx])
                loss = criterion(logits.reshape(-1, N_TAGS), yt[idx].reshape(-1))
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        tag_acc = (model(xv).argmax(-1) == yv).float().mean().item()
    return {"tag_acc": tag_acc, "fc_moved": moved(before, model.fc), "loss": loss.item()}
