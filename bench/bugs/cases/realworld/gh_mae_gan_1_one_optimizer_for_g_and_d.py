"""MAE-GAN pre-training: one optimizer over the whole model (MAE and discriminator) steps both losses.

Source: parthagrawal02/MAE_GAN issue #1, "dis_optimizer is not used" (https://github.com/parthagrawal02/MAE_GAN/issues/1).
engine_pretrain.py steps `gen_loss` and then `disc_loss` with the same `optimizer`, built on
`model.parameters()` (MAE encoder, decoder and discriminator together); the reporter: "the discriminator is not
updated with a separate optimizer as in GANs training loop ... disc Loss does include compute from decoder
parameters, since the generated patches are coming from the decoder. So the decoder parameters need to be
frozen when updating the discriminator". The author agreed ("Let's freeze the decoder param").
Fix: the separate `dis_optimizer` on the discriminator for `disc_loss` (with the reconstruction detached) and
the MAE optimizer for `gen_loss` only.
Data: the digits as 16 patches of 2x2 pixels, 75% masked; MLP encoder/decoder/discriminator stand in for the
ViTs; AdamW(lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05) as in MAE pre-training; the adaptive loss
weighting (aw_loss) is replaced by a fixed 0.1 weight on the adversarial term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits
from ...harness import case
from ._common import gen


def patch_masks(n: int, seed: int, ratio: float = 0.75) -> torch.Tensor:
    """(n, 64) pixel masks (1 = masked) built from 16 patches of 2x2 pixels."""
    g = gen(seed)
    keep = torch.rand(n, 16, generator=g).argsort(1) >= int(16 * ratio)  # True for visible patches
    m = (~keep).float().reshape(n, 4, 1, 4, 1).expand(n, 4, 2, 4, 2).reshape(n, 64)
    return m


class MAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 64))
        self.decoder = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))

    def forward(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(torch.cat([imgs * (1 - mask), mask], 1)))


class MaskedAutoencoderGAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mae = MAE()
        self.disc = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, imgs: torch.Tensor, mask: torch.Tensor, detach_fake: bool = False):
        pred = self.mae(imgs, mask)
        mae_loss = (((pred - imgs) ** 2) * mask).sum() / mask.sum()
        currupt_img = imgs * (1 - mask) + pred * mask
        fake = currupt_img.detach() if detach_fake else currupt_img
        real_logit, fake_logit = self.disc(imgs), self.disc(fake)
        disc_loss = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + \
            F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))  # fmt: skip
        adv_logit = self.disc(currupt_img)
        adv_loss = F.binary_cross_entropy_with_logits(adv_logit, torch.ones_like(adv_logit))
        return mae_loss, pred, disc_loss, adv_loss


@case(
    name="rw-wrong-network-mae-gan-shared-optimizer",
    source="https://github.com/parthagrawal02/MAE_GAN/issues/1",
    title="MAE-GAN: the MAE optimizer (over MAE + discriminator) steps disc_loss too; dis_optimizer unused",
    expect="optimizer-wrong-network",
    # the symptom: disc_loss's gradient also trains the decoder to make its patches detectable, so the
    # reconstruction is worse and D separates real from reconstructed almost perfectly
    verify=lambda bug, fixed: fixed["val_mae_loss"] < bug["val_mae_loss"] * 0.8 and bug["d_acc"] > 0.95,
    category="gan",
)
def program(bug: bool, nb) -> dict[str, float]:
    x, _ = digits()
    masks = patch_masks(len(x), seed=1)
    xt, mt, xv, mv = x[:1400], masks[:1400], x[1400:], masks[1400:]
    model = MaskedAutoencoderGAN()
    if bug:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
        dis_optimizer = optimizer  # created in main_pretrain.py but never used
    else:
        optimizer = torch.optim.AdamW(model.mae.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
        dis_optimizer = torch.optim.AdamW(
            model.disc.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05
        )
    with nb.watch_gan(model.disc, model.mae, dis_optimizer, optimizer, noise=(xv[:64], mv[:64])):
        for _epoch in range(6):
            perm = torch.randperm(len(xt))
            for i in range(0, len(xt) - 31, 32):
                samples, mask = xt[perm[i : i + 32]], mt[perm[i : i + 32]]
                mae_loss, pred, disc_loss, adv_loss = model(samples, mask)
                gen_loss = mae_loss + 0.1 * adv_loss
                optimizer.zero_grad()
                gen_loss.backward()
                optimizer.step()
                mae_loss, pred, disc_loss, adv_loss = model(samples, mask, detach_fake=not bug)
                dis_optimizer.zero_grad()
                disc_loss.backward()
                dis_optimizer.step()
    with torch.no_grad():
        mae_loss, pred, _, _ = model(xv, mv)
        fake = xv * (1 - mv) + pred * mv
        d_acc = ((model.disc(xv) > 0).float().mean() + (model.disc(fake) < 0).float().mean()).item() / 2
    return {"val_mae_loss": mae_loss.item(), "d_acc": d_acc}
