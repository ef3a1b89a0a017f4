"""A decomposable-attention NLI model whose loss is `-torch.log(softmax(logits))` weighted by one-hot labels.

Source: allenai/allennlp issue #2797, "Softmax giving absolute 0 resulting in 'nan' loss value"
(https://github.com/allenai/allennlp/issues/2797). The reporter modified DecomposableAttentionModel (pretrained
GloVe embeddings, not trainable, projected) and wrote `label_probs = softmax(label_logits_squeezed, dim=-1)`,
`log_label_probs = -torch.log(label_probs)`, `loss = torch.sum(log_label_probs * labels.float())`; with logits
like -142 / -211 / -247 the softmax underflows to exactly 0, `-log(0) = inf`, `inf * 0 = nan`:
"ValueError: nan loss encountered". Fix: compute the log-probabilities with log_softmax.
Data: synthetic premise/hypothesis pairs (entailment: hypothesis words drawn from the premise; contradiction:
a negation word plus premise words; neutral: unrelated words; 10% of labels flipped, like SNLI's annotation
noise) with a fixed embedding table standing in for GloVe, large enough that after the first Adagrad step the
logits are hundreds apart (as in the report: -142 / -211 / -247) and the softmax underflows at step 2;
attend / compare / aggregate MLPs as in the model; Adagrad(lr=0.05) as in AllenNLP's config.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...harness import case
from ._common import gen

VOCAB, NEG = 80, 79


def nli_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = gen(seed)
    premise = torch.randint(0, 60, (n, 8), generator=g)
    label = torch.randint(0, 3, (n,), generator=g)
    hyp = torch.empty(n, 5, dtype=torch.long)
    for i in range(n):
        pick = premise[i, torch.randint(0, 8, (5,), generator=g)]
        if label[i] == 0:  # entailment
            hyp[i] = pick
        elif label[i] == 1:  # contradiction
            hyp[i] = pick
            hyp[i, int(torch.randint(0, 5, (1,), generator=g))] = NEG
        else:  # neutral
            hyp[i] = torch.randint(60, 79, (5,), generator=g)
    noisy = torch.rand(n, generator=g) < 0.1  # annotation noise, as in SNLI
    label[noisy] = torch.randint(0, 3, (int(noisy.sum()),), generator=g)
    return premise, hyp, label


def mlp(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Linear(o, o), nn.ReLU())


class DecomposableAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 50)
        self.embed.weight.data = torch.randn(VOCAB, 50, generator=gen(300)) * 40.0  # "GloVe", not trainable
        self.embed.weight.requires_grad = False
        self.project = nn.Linear(50, 32)
        self.attend, self.compare, self.aggregate = mlp(32, 32), mlp(64, 32), mlp(64, 32)
        self.classify = nn.Linear(32, 3)

    def forward(self, premise: torch.Tensor, hypothesis: torch.Tensor) -> torch.Tensor:
        a, b = self.project(self.embed(premise)), self.project(self.embed(hypothesis))
        e = self.attend(a) @ self.attend(b).transpose(1, 2)
        beta = F.softmax(e, dim=2) @ b
        alpha = F.softmax(e, dim=1).transpose(1, 2) @ a
        v1 = self.compare(torch.cat([a, beta], -1)).sum(1)
        v2 = self.compare(torch.cat([b, alpha], -1)).sum(1)
        return self.classify(self.aggregate(torch.cat([v1, v2], -1)))


@case(
    name="rw-log-of-softmax-nan-decomposable-attention",
    source="https://github.com/allenai/allennlp/issues/2797",
    title="NLI model: loss = sum(-torch.log(softmax(logits)) * one_hot); softmax underflows to 0, loss NaN",
    expect="log-softmax-unstable",
    verify=lambda bug, fixed: (
        bug["nan_steps"] > 0
        and fixed["nan_steps"] == 0
        and fixed["val_acc"] > 0.6
        and fixed["val_acc"] > bug["val_acc"] + 0.1
    ),
    category="loss",
)
def program(bug: bool, nb) -> dict[str, float]:
    premise, hyp, label = nli_pairs(1300, seed=2797)
    model = DecomposableAttention()
    optimizer = torch.optim.Adagrad([p for p in model.parameters() if p.requires_grad], lr=0.05)
    nan_steps = 0
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            perm = torch.randperm(1100)
            for i in range(0, 1100, 32):
                idx = perm[i : i + 32]
                label_logits = model(premise[idx], hyp[idx])
                labels = F.one_hot(label[idx], 3)
                if bug:
                    label_probs = F.softmax(label_logits, dim=-1)
                    log_label_probs = -torch.log(label_probs)
                else:
                    log_label_probs = -F.log_softmax(label_logits, dim=-1)
                loss = torch.sum(log_label_probs * labels.float())
                nan_steps += int(not math.isfinite(loss.item()))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        val_acc = (model(premise[1100:], hyp[1100:]).argmax(1) == label[1100:]).float().mean().item()
    return {"val_acc": val_acc, "nan_steps": float(nan_steps), "loss": loss.item()}
