"""AC-GAN whose discriminator's auxiliary classifier ends in Softmax and is trained with NLLLoss.

Source: clvrai/ACGAN-PyTorch pull request #4, "Change Softmax to LogSoftmax to use NLLLoss"
(https://github.com/clvrai/ACGAN-PyTorch/pull/4), fixing issue #3: the discriminator returned
`self.softmax(fc_aux)` (nn.Softmax) to `aux_criterion = nn.NLLLoss()`; "it is `LogSoftmax` should be used for
`NLLLoss`, instead of `Softmax`" (maintainer: "That's right. CrossEntropyLoss = LogSoftmax + NLLLoss").
Data: the digits (8x8, in [-1, 1]) with their 10 labels; the AC-GAN structure (noise + one-hot class into G,
D with a sigmoid real/fake head and an auxiliary class head, BCELoss + NLLLoss on both sides, Adam lr=0.0002,
betas=(0.5, 0.999), batch 64) is the repository's, scaled to 8x8 MLP networks.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits
from ...harness import case

nz = 32


class Generator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Linear(nz + 10, 128), nn.ReLU(True), nn.Linear(128, 64), nn.Tanh())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, log: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Dropout(0.3))
        self.fc_dis = nn.Linear(128, 1)
        self.fc_aux = nn.Linear(128, 10)
        self.softmax = nn.LogSoftmax(dim=1) if log else nn.Softmax(dim=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(input)
        return self.sigmoid(self.fc_dis(h)).view(-1), self.softmax(self.fc_aux(h))


@case(
    name="rw-softmax-then-nllloss-acgan-aux",
    source="https://github.com/clvrai/ACGAN-PyTorch/pull/4",
    title="AC-GAN: auxiliary classifier ends in nn.Softmax but aux_criterion is NLLLoss",
    expect="softmax-before-ce",
    verify=lambda bug, fixed: (
        bug["aux_loss"] < 0
        and fixed["aux_loss"] > 0
        and fixed["real_class_acc"] > bug["real_class_acc"] + 0.05
    ),
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, y = digits(normalize=False)
    x = x / 8.0 - 1.0
    netG, netD = Generator(), Discriminator(log=not bug)
    dis_criterion, aux_criterion = nn.BCELoss(), nn.NLLLoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    with nb.watch_gan(netD, netG, optimizerD, optimizerG):
        for _epoch in range(6):
            perm = torch.randperm(1400)
            for i in range(0, 1400 - 63, 64):
                real_cpu, label = x[perm[i : i + 64]], y[perm[i : i + 64]]
                batch_size = real_cpu.size(0)
                netD.zero_grad()
                dis_label = torch.full((batch_size,), 1.0)
                dis_output, aux_output = netD(real_cpu)
                errD_real = dis_criterion(dis_output, dis_label) + aux_criterion(aux_output, label)
                errD_real.backward()
                fake_label = torch.randint(0, 10, (batch_size,))
                noise = torch.cat(
                    [torch.randn(batch_size, nz), nn.functional.one_hot(fake_label, 10).float()], 1
                )
                fake = netG(noise)
                dis_label.fill_(0.0)
                dis_output, aux_output = netD(fake.detach())
                errD_fake = dis_criterion(dis_output, dis_label) + aux_criterion(aux_output, fake_label)
                errD_fake.backward()
                optimizerD.step()
                netG.zero_grad()
                dis_label.fill_(1.0)
                dis_output, aux_output = netD(fake)
                aux_errG = aux_criterion(aux_output, fake_label)
                errG = dis_criterion(dis_output, dis_label) + aux_errG
                errG.backward()
                optimizerG.step()
    netD.eval()
    with torch.no_grad():
        _, aux_val = netD(x[1400:])
        real_class_acc = (aux_val.argmax(1) == y[1400:]).float().mean().item()
    return {"real_class_acc": real_class_acc, "aux_loss": aux_errG.item()}
