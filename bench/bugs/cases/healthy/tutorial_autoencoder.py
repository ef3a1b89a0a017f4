"""Autoencoder: A Deep Dive, `AutoencoderLinear`: Linear encoder and decoder with leaky_relu, a sigmoid
output, MSELoss between the reconstruction and the input, Adam lr=0.001, batch size 32, 10 epochs, batches
reshaped to [batch_s, pixels] by `train_model()`.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/autoencoders_tutorial.py
The tutorial reports the training loss falling and "the general shape of the given input" being learned
after 10 epochs. A reconstruction loss: no classes, no accuracy.
Scaled: 8x8 digits in [0, 1] instead of 28x28 Fashion-MNIST, so the widths 784-196-98 become 64-16-8 (same
ratios); 1376 training images (a multiple of the batch size, as the tutorial's 60000 is).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import loader, split
from ...harness import case
from ._common import unit_digits


class AutoencoderLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear_en_1 = nn.Linear(in_features=8 * 8, out_features=16)
        self.linear_en_2 = nn.Linear(in_features=16, out_features=8)
        self.linear_de_1 = nn.Linear(in_features=8, out_features=16)
        self.linear_de_2 = nn.Linear(in_features=16, out_features=8 * 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encode_1 = F.leaky_relu(self.linear_en_1(x))
        encode_2 = F.leaky_relu(self.linear_en_2(encode_1))
        decode_1 = F.leaky_relu(self.linear_de_1(encode_2))
        return F.sigmoid(self.linear_de_2(decode_1))


@case(
    name="healthy-tut-autoencoder-linear-mse",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/autoencoders_tutorial.py",
    title="Linear autoencoder, MSE reconstruction loss, Adam lr=1e-3, batch 32, 10 epochs",
    healthy=True,
    verify=lambda m: m["last_loss"] < 0.5 * m["first_loss"],
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), _ = split(*unit_digits())
    xt, yt = xt[:1376].reshape(-1, 1, 8, 8), yt[:1376]
    loader_obj = loader(xt, yt, batch_size=32, shuffle=True)
    model_obj = AutoencoderLinear()
    optimizer_obj = torch.optim.Adam(model_obj.parameters(), lr=0.001)
    loss_obj = nn.MSELoss()
    batch_s = 32
    train_loss = []
    with nb.watch(model_obj, optimizer_obj):
        for _epoch in range(10):
            for _i, data_ in enumerate(loader_obj, 0):
                batches, _targets = data_
                batches = batches.reshape([batch_s, 8 * 8])
                optimizer_obj.zero_grad()
                logits = model_obj(batches)
                loss = loss_obj(logits, batches)
                loss.backward()
                optimizer_obj.step()
                train_loss.append(loss.item())
    return {"first_loss": train_loss[0], "last_loss": sum(train_loss[-20:]) / 20}
