"""Dive into Deep Learning 5.6, Dropout (concise implementation): DropoutMLP = Flatten, LazyLinear(256),
ReLU, Dropout(0.5), LazyLinear(256), ReLU, Dropout(0.5), LazyLinear(10); SGD lr=0.1 built inside
trainer.fit; batch 256; 10 epochs; the validation pass runs in eval mode (dropout off).

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/dropout.md
The book reports validation accuracy ~0.8 and a validation loss below the training loss (dropout noise
raises the training loss, not the validation loss). A user watches the model around `trainer.fit`.
Scaled: 8x8 digits in [0, 1] instead of 28x28 Fashion-MNIST; 10 epochs of 6 batches.
"""

from __future__ import annotations

from torch import nn

from ...data import split
from ...harness import case
from ._common import D2LClassifier, D2LTrainer, mean, tensor_loader, unit_digits


class DropoutMLP(D2LClassifier):
    def __init__(self, num_outputs, num_hiddens_1, num_hiddens_2, dropout_1, dropout_2, lr) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Flatten(), nn.LazyLinear(num_hiddens_1), nn.ReLU(),
            nn.Dropout(dropout_1), nn.LazyLinear(num_hiddens_2), nn.ReLU(),
            nn.Dropout(dropout_2), nn.LazyLinear(num_outputs),
        )  # fmt: skip


@case(
    name="healthy-d2l-dropout-mlp",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_multilayer-perceptrons/dropout.md",
    title="d2l dropout MLP (two Dropout(0.5) layers), SGD lr=0.1, validation in eval mode each epoch",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.6,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*unit_digits())
    hparams = {
        "num_outputs": 10,
        "num_hiddens_1": 256,
        "num_hiddens_2": 256,
        "dropout_1": 0.5,
        "dropout_2": 0.5,
        "lr": 0.1,
    }
    model = DropoutMLP(**hparams)
    trainer = D2LTrainer(max_epochs=10)
    with nb.watch(model):
        trainer.fit(model, tensor_loader((xt, yt), 256, True), tensor_loader((xv, yv), 256, False))
    return {"val_acc": mean(model.val_accs), "val_loss": mean(model.val_losses)}
