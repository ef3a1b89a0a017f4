"""code-soup's MNIST GAN step(): the discriminator's gradients are never zeroed, so they accumulate over
every iteration (and collect the generator step's backward through D as well).

Source: Adversarial-Deep-Learning/code-soup issue #69, "Zero Grad and Generator error missing in GAN"
https://github.com/Adversarial-Deep-Learning/code-soup/issues/69
Reported: "add self.discriminator.zero_grad()" (labelled bug, priority high); fixed in pull request #74
("added zero_grad() method for discriminator"). The program is code_soup/ch5/models/gan.py: the MLP
Generator (256-512-1024, LeakyReLU, Tanh) and Discriminator (1024-512-256 with Dropout 0.3, Sigmoid),
BCELoss, Adam for each, and GAN.step() (errD_real.backward(), errD_fake.backward() on fake.detach(),
discriminator step, generator.zero_grad(), errG.backward(), generator step) with the MLPs scaled to
64 units, on the 8-Gaussian ring (2-D points, so no Tanh on G's output); Adam lr 2e-3, latent 16,
batch 64, 800 steps.
"""

from __future__ import annotations

import torch
import torch.optim as optim
from torch import nn

from ...harness import case
from ._common import gen, ring, ring_scores


class Generator(nn.Module):
    def __init__(self, latent_dims: int, lr: float) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(latent_dims, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64), nn.LeakyReLU(0.2),
            nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 2),
        )  # fmt: skip
        self.optimizer = optim.Adam(self.parameters(), lr=lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class Discriminator(nn.Module):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(64, 64), nn.LeakyReLU(0.2),
            nn.Dropout(0.3), nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Linear(64, 1), nn.Sigmoid(),
        )  # fmt: skip
        self.optimizer = optim.Adam(self.parameters(), lr=lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


@case(
    name="gan-discriminator-never-zero-grad",
    source="https://github.com/Adversarial-Deep-Learning/code-soup/issues/69",
    title="GAN step() that never calls discriminator.zero_grad(): D's gradients accumulate across iterations",
    expect="grad-not-zeroed",
    verify=lambda bug, fixed: (
        bug["quality"] == 0.0 and fixed["quality"] > 0.02 and bug["spread"] > 1.5 * fixed["spread"]
    ),
    first_effect=2,
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    latent_dims, lr, batch_size = 16, 2e-3, 64
    generator, discriminator = Generator(latent_dims, lr), Discriminator(lr)
    criterion = nn.BCELoss()
    g = gen(69)
    with nb.watch_gan(discriminator, generator, discriminator.optimizer, generator.optimizer):
        for _step in range(800):
            real_image = ring(batch_size, g)
            if not bug:
                discriminator.zero_grad()
            label = torch.full((batch_size,), 1.0)
            output = discriminator(real_image).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            noise = torch.randn(batch_size, latent_dims)
            fake = generator(noise)
            label.fill_(0.0)
            output = discriminator(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            discriminator.optimizer.step()
            generator.zero_grad()
            label.fill_(1.0)
            output = discriminator(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            generator.optimizer.step()
    generator.eval()
    with torch.no_grad():
        return ring_scores(generator(torch.randn(512, latent_dims, generator=gen(1))))
