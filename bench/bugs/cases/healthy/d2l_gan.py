"""Dive into Deep Learning 20.1, Generative Adversarial Networks: "the world's lamest example": real data is
a Gaussian N(0, I) pushed through X A + b, the generator is a single nn.Linear(2, 2), the discriminator an
MLP (Linear 2-5, Tanh, Linear 5-3, Tanh, Linear 3-1); BCEWithLogitsLoss(reduction='sum'), weights drawn
from N(0, 0.02), Adam lr_D=0.05 and lr_G=0.005, batch 8; update_D uses `net_G(Z).detach()`, update_G
recomputes D on a fresh G(Z) with label 1.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_generative-adversarial-networks/gan.md
The book shows the generated points moving onto the real Gaussian and both losses settling near
ln 2 x batch: a GAN at equilibrium, where D cannot tell real from fake.
Scaled: 12 epochs instead of 20 (1000 points, 125 batches each).
"""

from __future__ import annotations

import torch
from torch import nn

from ...harness import case


@case(
    name="healthy-d2l-gan-gaussian",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_generative-adversarial-networks/gan.md",
    title="d2l toy GAN: linear G fits a 2-D Gaussian, MLP D, BCEWithLogitsLoss(sum), Adam 0.05 / 0.005",
    healthy=True,
    verify=lambda m: m["mean_err"] < 0.5 and m["mean_err"] < 0.3 * m["mean_err_start"],
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    X = torch.normal(0.0, 1, (1000, 2))
    A = torch.tensor([[1, 2], [-0.1, 0.5]])
    b = torch.tensor([1, 2])
    data = torch.matmul(X, A) + b
    batch_size = 8
    data_iter = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size, shuffle=True)
    net_G = nn.Sequential(nn.Linear(2, 2))
    net_D = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 1))

    def update_D(X, Z, net_D, net_G, loss, trainer_D) -> torch.Tensor:
        batch_size = X.shape[0]
        ones = torch.ones((batch_size,), device=X.device)
        zeros = torch.zeros((batch_size,), device=X.device)
        trainer_D.zero_grad()
        real_Y = net_D(X)
        fake_X = net_G(Z)
        fake_Y = net_D(fake_X.detach())
        loss_D = (loss(real_Y, ones.reshape(real_Y.shape)) + loss(fake_Y, zeros.reshape(fake_Y.shape))) / 2
        loss_D.backward()
        trainer_D.step()
        return loss_D

    def update_G(Z, net_D, net_G, loss, trainer_G) -> torch.Tensor:
        batch_size = Z.shape[0]
        ones = torch.ones((batch_size,), device=Z.device)
        trainer_G.zero_grad()
        fake_X = net_G(Z)
        fake_Y = net_D(fake_X)
        loss_G = loss(fake_Y, ones.reshape(fake_Y.shape))
        loss_G.backward()
        trainer_G.step()
        return loss_G

    num_epochs, lr_D, lr_G, latent_dim = 12, 0.05, 0.005, 2
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    for w in net_D.parameters():
        nn.init.normal_(w, 0, 0.02)
    for w in net_G.parameters():
        nn.init.normal_(w, 0, 0.02)
    trainer_D = torch.optim.Adam(net_D.parameters(), lr=lr_D)
    trainer_G = torch.optim.Adam(net_G.parameters(), lr=lr_G)
    real_mean = data.mean(0)
    with torch.no_grad():
        start = (net_G(torch.normal(0, 1, size=(1000, latent_dim))).mean(0) - real_mean).norm().item()
    with nb.watch_gan(net_D, net_G, trainer_D, trainer_G):
        for _epoch in range(num_epochs):
            for (X,) in data_iter:
                batch_size = X.shape[0]
                Z = torch.normal(0, 1, size=(batch_size, latent_dim))
                update_D(X, Z, net_D, net_G, loss, trainer_D)
                update_G(Z, net_D, net_G, loss, trainer_G)
    with torch.no_grad():
        fake_X = net_G(torch.normal(0, 1, size=(1000, latent_dim)))
    return {"mean_err_start": start, "mean_err": (fake_X.mean(0) - real_mean).norm().item()}
