"""pytorch/examples vae: VAE (fc1, fc21/fc22 for mu and logvar, reparameterize, fc3, fc4 + sigmoid), loss =
binary_cross_entropy(recon, x, reduction='sum') + KLD summed over the batch, Adam lr=1e-3, batch 128, a
`test()` pass under eval + no_grad after every epoch.

Source: https://github.com/pytorch/examples/blob/main/vae/main.py
The example prints the average loss per image falling epoch after epoch (~164 -> ~105 on MNIST). The loss
is a sum over pixels and batch, so its raw value is in the thousands, and the KL term grows while the
reconstruction term falls.
Scaled: 8x8 digits in [0, 1] instead of 28x28 MNIST (784 -> 64 inputs), hidden 128 instead of 400, latent
20 as in the example; 10 epochs (the default) of 11 batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from ...data import loader, split
from ...harness import case
from ._common import unit_digits


class VAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc21 = nn.Linear(128, 20)
        self.fc22 = nn.Linear(128, 20)
        self.fc3 = nn.Linear(20, 128)
        self.fc4 = nn.Linear(128, 64)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar) -> torch.Tensor:
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


@case(
    name="healthy-ex-vae-bce-kld-sum",
    source="https://github.com/pytorch/examples/blob/main/vae/main.py",
    title="VAE with summed BCE + KL divergence, Adam lr=1e-3, test pass each epoch",
    healthy=True,
    verify=lambda m: m["last_test_loss"] < 0.8 * m["first_test_loss"],
    category="pytorch-examples",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*unit_digits())
    train_loader = loader(xt, yt, batch_size=128, shuffle=True)
    test_loader = loader(xv, yv, batch_size=128, shuffle=False)
    model = VAE()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)

    def train(epoch: int) -> float:
        model.train()
        train_loss = 0.0
        for data, _ in train_loader:
            optimizer.zero_grad()
            recon_batch, mu, logvar = model(data)
            loss = loss_function(recon_batch, data, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        return train_loss / len(train_loader.dataset)

    def test(epoch: int) -> float:
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data, _ in test_loader:
                recon_batch, mu, logvar = model(data)
                test_loss += loss_function(recon_batch, data, mu, logvar).item()
        return test_loss / len(test_loader.dataset)

    test_losses = []
    with nb.watch(model, optimizer):
        for epoch in range(1, 11):
            train(epoch)
            test_losses.append(test(epoch))
            with torch.no_grad():
                model.decode(torch.randn(64, 20))
    return {"first_test_loss": test_losses[0], "last_test_loss": test_losses[-1]}
