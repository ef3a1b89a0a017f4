"""Dive into Deep Learning 5.2, Concise Implementation of Multilayer Perceptrons: MLP = Flatten,
LazyLinear(256), ReLU, LazyLinear(10); F.cross_entropy; SGD lr=0.1 built inside trainer.fit; batch 256;
d2l.Trainer(max_epochs=10) with a validation pass per epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/mlp-implementation.md
The book reports validation accuracy ~0.85 on Fashion-MNIST after 10 epochs. A user watches the model
around `trainer.fit`.
Scaled: 8x8 digits in [0, 1] instead of 28x28 Fashion-MNIST; 10 epochs of 6 batches.
"""

from __future__ import annotations

from torch import nn

from ...data import split
from ...harness import case
from ._common import D2LClassifier, D2LTrainer, mean, tensor_loader, unit_digits


class MLP(D2LClassifier):
    def __init__(self, num_outputs: int, num_hiddens: int, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(num_hiddens), nn.ReLU(), nn.LazyLinear(num_outputs)
        )


@case(
    name="healthy-d2l-mlp-concise",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/mlp-implementation.md",
    title="d2l concise MLP (256 hidden ReLU units), SGD lr=0.1, batch 256, 10 epochs",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.7,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*unit_digits())
    model = MLP(num_outputs=10, num_hiddens=256, lr=0.1)
    trainer = D2LTrainer(max_epochs=10)
    with nb.watch(model):
        trainer.fit(model, tensor_loader((xt, yt), 256, True), tensor_loader((xv, yv), 256, False))
    return {"val_acc": mean(model.val_accs), "val_loss": mean(model.val_losses)}
