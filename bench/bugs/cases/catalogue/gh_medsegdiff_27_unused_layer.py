"""A conditional segmentation network whose image-conditioning encoder is built in __init__ but never
called in forward.

Source: ImprintLab/MedSegDiff issue #27, "Why there are some unused parameters?"
https://github.com/ImprintLab/MedSegDiff/issues/27
Reported (DDP): "your module has parameters that were not used in producing loss". Maintainer: "it looks
like you define some parameterized layer in 'class NetWorkxx: def __init__' but not used in the
forward". On one process nothing raises: the unused layer simply never receives a gradient, and here it
is the layer that was meant to bring the image in. Scaled down: MedSegDiff's denoising formulation (the
network sees a noised mask and the image condition, and predicts the clean mask) on the 8x8 digits, whose
"organ" is the set of bright pixels; AdamW (lr 1e-3, no weight decay), 4 epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class CondDenoiser(nn.Module):
    def __init__(self, use_condition: bool) -> None:
        super().__init__()
        self.mask_in = nn.Conv2d(1, 32, 3, padding=1)
        self.cond_encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)
        )
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, padding=1)
        )
        self.use_condition = use_condition

    def forward(self, noisy_mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        h = self.mask_in(noisy_mask)
        if self.use_condition:
            h = h + self.cond_encoder(image)
        return self.body(h)


@case(
    name="conditioning-layer-unused-in-forward",
    source="https://github.com/ImprintLab/MedSegDiff/issues/27",
    title="conditional mask denoiser: the image encoder defined in __init__ is never used in forward",
    expect="no-grad",
    verify=lambda bug, fixed: fixed["val_dice"] > bug["val_dice"] + 0.2,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, _), (xv, _) = split(*digits_images())
    mt, mv = (xt > 0.5).float(), (xv > 0.5).float()
    model = CondDenoiser(use_condition=not bug)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(27)
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            for image, mask in loader(xt, mt, batch_size=16):
                t = torch.rand(len(mask), 1, 1, 1, generator=g)
                noisy = (1 - t) * (2 * mask - 1) + t * torch.randn(mask.shape, generator=g)
                optimizer.zero_grad()
                loss = F.binary_cross_entropy_with_logits(model(noisy, image), mask)
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = (model(torch.randn(mv.shape, generator=g), xv) > 0).float()
        dice = (2 * (pred * mv).sum() / (pred.sum() + mv.sum())).item()
    return {"val_dice": dice}
