"""pytorch-fcn's Trainer: validate() switches the FCN to eval mode inside the epoch and train_epoch() does
not switch it back, so after each validation the network trains without its dropout.

Source: wkentaro/pytorch-fcn issue #57, "A little bug in trainer.py"
https://github.com/wkentaro/pytorch-fcn/issues/57
Reported: "Do you find that the training loss will suddenly become larger when a new epoch starts? ... it
is because of the incorrect use of the training and evaluating mode of the model. In train_epoch() ...
when you finish validation, I think you should change the model back into training mode." Another user:
"I was getting unpredictable results and I just realized that the reason was this issue." Fixed by
`self.model.train()` after `self.validate()`. The loop is Trainer.train_epoch (model.train() at the
epoch's start, validate() every interval_validate iterations at the top of the iteration, cross-entropy
over pixels, SGD with momentum) around a small FCN whose fc6/fc7 are convolutions over the whole feature map with Dropout2d, as
in FCN32s (plus a local 1x1 score); the task labels each bright pixel of an 8x8 digit with the digit (background = class 10).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class FCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU()
        )
        self.fc6 = nn.Sequential(
            nn.Conv2d(64 * 64, 256, 1), nn.ReLU(), nn.Dropout2d(0.5)
        )  # fc6 sees the whole map
        self.fc7 = nn.Sequential(nn.Conv2d(256, 256, 1), nn.ReLU(), nn.Dropout2d(0.5))
        self.score_fr = nn.Conv2d(256, 11, 1)
        self.score_local = nn.Conv2d(64, 11, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.features(x)
        whole = feat.flatten(1)[:, :, None, None]
        return self.score_local(feat) + self.score_fr(self.fc7(self.fc6(whole)))


def pixel_labels(img: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    fg = img[:, 0] > 0.5
    return torch.where(fg, y[:, None, None].expand_as(fg), torch.full_like(fg, 10, dtype=torch.long))


@case(
    name="fcn-trainer-validate-leaves-eval-mode",
    source="https://github.com/wkentaro/pytorch-fcn/issues/57",
    title="FCN trainer whose in-epoch validate() leaves dropout off; the loss jumps up at each epoch start",
    expect="eval-mode",
    verify=lambda bug, fixed: bug["epoch_start_jump"] > 1.3 and fixed["epoch_start_jump"] < 1.15,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    model = FCN()
    optim = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    interval_validate, iteration = 40, 0
    losses: list[list[float]] = []

    def validate() -> None:
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(xv), pixel_labels(xv, yv))

    with nb.watch(model, optim):
        for _epoch in range(5):
            model.train()
            losses.append([])
            for data, target in loader(xt, yt, batch_size=32):
                if iteration % interval_validate == 0:
                    validate()
                    if not bug:
                        model.train()
                optim.zero_grad()
                loss = F.cross_entropy(model(data), pixel_labels(data, target))
                loss.backward()
                optim.step()
                losses[-1].append(loss.item())
                iteration += 1
    jumps = [sum(cur[:3]) / sum(prev[-3:]) for prev, cur in zip(losses[1:-1], losses[2:])]
    return {"epoch_start_jump": sum(jumps) / len(jumps), "last_loss": losses[-1][-1]}
