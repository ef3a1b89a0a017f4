"""labelmodels' estimate_label_model loop accumulating `running_loss += loss` (the tensor, not .item()).

Source: BatsResearch/labelmodels issue #4, "Memory leak in training loop"
https://github.com/BatsResearch/labelmodels/issues/4
Reported: "You're holding on to the graph for each batch per epoch, since `running_loss` is the sum of
non-detached tensors. For a large enough training set my GPU runs out of memory ... It should be
sufficient to change to running_loss += loss.item()". Fixed by the maintainer. The program is the repo's
LabelModel._do_estimate_label_model loop (SGD lr=0.01, momentum=0.9, batch 64, 5 epochs) with its naive
Bayes label model (class balance, per-LF accuracies and propensities, accuracy prior), vectorised, on
seeded synthetic votes of 10 labeling functions; nbdebug.memory is run on the variables after training.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...harness import case
from ._common import gen, graph_nodes


class NaiveBayes(nn.Module):
    def __init__(
        self, num_classes: int, num_lfs: int, init_acc: float = 0.9, acc_prior: float = 0.025
    ) -> None:
        super().__init__()
        init = -1 * math.log(1.0 / init_acc - 1) / 2
        self.accuracy = nn.Parameter(torch.full((num_lfs, num_classes), init))
        self.propensity = nn.Parameter(torch.zeros(num_lfs))
        self.class_balance = nn.Parameter(torch.zeros(num_classes))
        self.num_classes, self.init_acc, self.acc_prior = num_classes, init, acc_prior

    def forward(self, votes: torch.Tensor) -> torch.Tensor:
        """votes: (m, n) in {0 (abstain), 1..k}; returns the (m,) marginal log-likelihoods."""
        k = self.num_classes
        z_prop = torch.logsumexp(torch.stack([self.propensity, torch.zeros_like(self.propensity)], 1), 1)
        z_acc = torch.logsumexp(torch.stack([self.accuracy, -self.accuracy], 2), 2)
        onehot = nn.functional.one_hot(votes, k + 1)[..., 1:].float()  # (m, n, k)
        voted = (votes > 0).float()[..., None]
        right = self.propensity[None, :, None] + self.accuracy[None] - z_acc[None]
        wrong = self.propensity[None, :, None] - self.accuracy[None] - z_acc[None] - math.log(k - 1.0)
        cll = (onehot * right + (voted - onehot) * wrong).sum(1) - z_prop.sum()
        return torch.logsumexp(torch.log_softmax(self.class_balance, 0)[None] + cll, 1)

    def regularization(self) -> torch.Tensor:
        return self.acc_prior * torch.norm(self.accuracy - self.init_acc)


@case(
    name="running-loss-keeps-graph-labelmodels",
    source="https://github.com/BatsResearch/labelmodels/issues/4",
    title="label-model training loop accumulating running_loss += loss: every batch's graph stays alive",
    expect="graph-retained",
    verify=lambda bug, fixed: (
        bug["graph_nodes"] > 100
        and fixed["graph_nodes"] == 0
        and abs(bug["acc_error"] - fixed["acc_error"]) < 1e-4
    ),
    category="memory",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(4)
    n, m, k = 10, 3000, 3
    labels = torch.randint(0, k, (m,), generator=g)
    true_acc = 0.6 + 0.35 * torch.rand(n, generator=g)
    votes = torch.zeros(m, n, dtype=torch.long)
    for j in range(n):
        fires = torch.rand(m, generator=g) < 0.5
        right = torch.rand(m, generator=g) < true_acc[j]
        other = (labels + torch.randint(1, k, (m,), generator=g)) % k
        votes[:, j] = torch.where(fires, torch.where(right, labels, other) + 1, torch.zeros_like(labels))
    model = NaiveBayes(k, n)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0)
    batches = [votes[i : i + 64] for i in range(0, m, 64)]
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train()
            running_loss = 0.0
            for inputs in batches:
                optimizer.zero_grad()
                loss = -1 * torch.mean(model(inputs))
                loss += model.regularization()
                loss.backward()
                optimizer.step()
                running_loss += loss if bug else loss.item()
            epoch_loss = running_loss / len(batches)
    nb.memory(
        namespace={
            "model": model,
            "optimizer": optimizer,
            "running_loss": running_loss,
            "epoch_loss": epoch_loss,
        }
    )
    est = torch.sigmoid(2 * model.accuracy.detach()).mean(1)
    return {
        "graph_nodes": float(graph_nodes(running_loss)),
        "acc_error": (est - true_acc).abs().mean().item(),
    }
