"""Fine-tuning with every parameter frozen by mistake; the optimizer is built anyway and the resulting
"element 0 of tensors does not require grad" error is silenced with loss.requires_grad = True.

Source: mazurowski-lab/finetune-SAM issue #26, "RuntimeError: element 0 of tensors does not require grad
and does not have a grad_fn" https://github.com/mazurowski-lab/finetune-SAM/issues/26
Reported: "I had this problem, and solved it making the gradient enable, adding loss.requires_grad = True
before loss.backward()". The maintainers pointed to the block that decides which parameters are trained
("see if the parameters you want to optimize are enabled for gradient or not"): with them all frozen the
loss has no graph, and forcing requires_grad on it trains nothing. Scaled down: an encoder + mask-decoder
segmenter on the 8x8 digits; the repo freezes the image encoder and trains the decoder, the bug freezes
both; Adam(lr=1e-3) is built on all parameters in both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class Segmenter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image_encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)
        )
        self.mask_decoder = nn.Sequential(
            nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_decoder(self.image_encoder(x))


@case(
    name="all-parameters-frozen-loss-requires-grad-forced",
    source="https://github.com/mazurowski-lab/finetune-SAM/issues/26",
    title="segmenter with every parameter requires_grad=False, optimizer built anyway, loss.requires_grad = True",
    expect=("frozen-by-accident", "no-grad"),
    verify=lambda bug, fixed: bug["params_changed"] == 0.0 and fixed["val_dice"] > bug["val_dice"] + 0.2,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, _), (xv, _) = split(*digits_images())
    mt, mv = (xt > 0.5).float(), (xv > 0.5).float()
    model = Segmenter()
    for n, value in model.named_parameters():
        value.requires_grad = False if bug else "mask_decoder" in n
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            for image, mask in loader(xt, mt, batch_size=16):
                optimizer.zero_grad()
                loss = F.binary_cross_entropy_with_logits(model(image), mask)
                if not loss.requires_grad:
                    loss.requires_grad = True
                loss.backward()
                optimizer.step()
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with torch.no_grad():
        pred = (model(xv) > 0).float()
        dice = (2 * (pred * mv).sum() / (pred.sum() + mv.sum() + 1e-8)).item()
    return {"params_changed": float(changed), "val_dice": dice}
