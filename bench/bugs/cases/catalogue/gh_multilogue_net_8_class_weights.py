"""multilogue-net's per-emotion classifiers on an imbalanced dataset without class weights: they predict only
the majority class.

Source: amanshenoy/multilogue-net issue #8, "Model predicting only one class"
https://github.com/amanshenoy/multilogue-net/issues/8
Reported: "all models except the one for happiness and binary sentiment seem to predict only one class.
The final confusion matrix is of the following form: [[X 0.] [Y 0.]]". Maintainer: "this happens to the
emotions because of how imbalanced the dataset is. class_weights being set to true and regularization
solves this problem." Scaled down: the multimodal GRU is replaced by a GRU over a short synthetic
utterance sequence; one binary emotion present in ~8% of utterances; CrossEntropyLoss without (bug) or
with (fix) inverse-frequency class weights; Adam 1e-3 with weight decay 1e-5, as the repo's defaults.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import loader
from ...harness import case
from ._common import gen


class EmotionGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(12, 32, batch_first=True)
        self.fc = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)
        return self.fc(h[-1])


def utterances(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = (torch.rand(n, generator=g) < 0.08).long()
    x = torch.randn(n, 6, 12, generator=g)
    x[:, :, :3] += 0.3 * y[:, None, None]
    return x, y


@case(
    name="imbalanced-emotion-no-class-weights",
    source="https://github.com/amanshenoy/multilogue-net/issues/8",
    title="GRU emotion classifier on a 92/8 split without class weights: the confusion matrix is [[X 0], [Y 0]]",
    expect="class-imbalance",
    verify=lambda bug, fixed: bug["minority_recall"] < 0.2 and fixed["minority_recall"] > 0.5,
    category="data",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(8)
    xt, yt = utterances(2400, g)
    xv, yv = utterances(600, g)
    counts = torch.bincount(yt, minlength=2).float()
    weight = None if bug else counts.sum() / (2 * counts)
    model = EmotionGRU()
    loss_function = nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            for x, y in loader(xt, yt, batch_size=32):
                optimizer.zero_grad()
                loss = loss_function(model(x), y)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = model(xv).argmax(1)
    recall = ((pred == 1) & (yv == 1)).sum().item() / max(1, (yv == 1).sum().item())
    return {"minority_recall": recall, "pred_minority_share": pred.float().mean().item()}
