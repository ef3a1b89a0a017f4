"""Language-adversarial training whose adversarial term is computed on detached discriminator logits.

Source: Impavidity/relogic pull request #6, "Adversarial training fix"
(https://github.com/Impavidity/relogic/pull/6): "Originally the loss from discriminator is missing for generator
training because I detach the logits when it returns." The task logits of the language-identification
discriminator were returned as `logits.detach()` for the generator step, so the encoder's adversarial loss gave it
no gradient and the encoder never learned language-invariant features. Fix (commit "fix detach problem in the
adversarial training"): return the logits without `detach()` for that task.
Data: the digits as a labelled "source language" and a shifted copy as an unlabelled "target language"; an MLP
encoder with a task head, a logistic-regression discriminator (discriminator_type "LR"), soft label 0.5 for the
encoder's adversarial loss scaled by 0.5, five discriminator steps per encoder step (n_critic_dis 5,
n_critic_gen 1), adversarial_lr=5e-4 as in the repository's configuration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits, split
from ...harness import case
from ._common import gen


@case(
    name="rw-loss-term-detached-adversarial-logits",
    source="https://github.com/Impavidity/relogic/pull/6",
    title="domain-adversarial training: the encoder's adversarial loss uses detached discriminator logits",
    expect="loss-term-detached",
    verify=lambda bug, fixed: (
        bug["disc_acc"] > 0.9
        and fixed["disc_acc"] < bug["disc_acc"] - 0.15
        and fixed["target_acc"] > bug["target_acc"] + 0.1
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xs, ys), (xv, yv) = split(*digits())
    shift = 1.5 * torch.randn(64, generator=gen(6))
    xtgt = xs[torch.randperm(len(xs), generator=gen(7))] + shift  # unlabelled target language
    encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
    task_head = nn.Linear(32, 10)
    model = nn.Sequential(encoder, task_head)
    discriminator = nn.Linear(32, 1)  # "LR"
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    adv_optimizer = torch.optim.Adam(discriminator.parameters(), lr=5e-4)
    scale = 0.5
    g = gen(8)
    with nb.watch_gan(discriminator, encoder, adv_optimizer, optimizer, noise=xs[:64]):
        for _step in range(250):
            i_s = torch.randint(0, len(xs), (32,), generator=g)
            i_t = torch.randint(0, len(xtgt), (32,), generator=g)
            for _ in range(5):  # n_critic_dis
                adv_optimizer.zero_grad()
                feats = torch.cat([encoder(xs[i_s]), encoder(xtgt[i_t])]).detach()
                lang = torch.cat([torch.ones(32, 1), torch.zeros(32, 1)])
                F.binary_cross_entropy_with_logits(discriminator(feats), lang).backward()
                adv_optimizer.step()
            optimizer.zero_grad()
            fs, ft = encoder(xs[i_s]), encoder(xtgt[i_t])
            task_loss = F.cross_entropy(task_head(fs), ys[i_s])
            logits = discriminator(torch.cat([fs, ft]))
            if bug:
                logits = logits.detach()
            adv_loss = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))  # soft label
            loss = task_loss + scale * adv_loss
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        target_acc = (model(xv + shift).argmax(1) == yv).float().mean().item()
        feats = torch.cat([encoder(xv), encoder(xv + shift)])
        lang = torch.cat([torch.ones(len(xv)), torch.zeros(len(xv))])
        disc_acc = ((discriminator(feats).squeeze(1) > 0).float() == lang).float().mean().item()
    return {
        "target_acc": target_acc,
        "disc_acc": disc_acc,
        "source_acc": (model(xv).argmax(1) == yv).float().mean().item(),
    }
