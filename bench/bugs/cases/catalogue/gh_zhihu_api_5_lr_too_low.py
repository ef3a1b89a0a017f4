"""A captcha recogniser (CNN + bidirectional GRU + CTC) trained with Adam at lr=1e-5: after many epochs the
sequence accuracy is still 0.

Source: littlepai/Unofficial-Zhihu-API issue #5, "为什么训练了快20轮准确率还是0，而且学习率很低，0.00000851，
是哪出问题了吗" ("after almost 20 epochs the accuracy is still 0, and the learning rate is very low,
0.00000851 - what is wrong?") https://github.com/littlepai/Unofficial-Zhihu-API/issues/5
Reply: "学习率初始化为1e-5是不是有点太低了？" ("isn't initialising the learning rate at 1e-5 a bit too low?").
The program is a CRNN captcha model (conv features -> BiGRU over columns -> per-column classes + blank,
CTCLoss) on 4-character captchas built from the 8x8 digits; the bug trains it with Adam(lr=1e-5), the
fix with Adam(lr=1e-3); 4 epochs, batch 32.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data import digits_images, loader
from ...harness import case
from ._common import gen


class CRNN(nn.Module):
    def __init__(self, n_classes: int = 11) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 2)),
        )  # fmt: skip
        self.rnn = nn.GRU(64 * 2, 64, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(128, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)  # (N, 64, 2, 16)
        f = f.permute(0, 3, 1, 2).flatten(2)  # (N, 16, 128): one step per column pair
        out, _ = self.rnn(f)
        return self.fc(out).log_softmax(2)  # (N, T, C)


def captchas(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits_images()
    idx = torch.randint(0, len(x), (n, 4), generator=g)
    images = torch.cat([x[idx[:, k]] for k in range(4)], dim=3)  # (n, 1, 8, 32)
    return images, y[idx] + 1  # classes 1..10, 0 is the CTC blank


def decode(logp: torch.Tensor) -> list[list[int]]:
    out = []
    for seq in logp.argmax(2).tolist():
        s, prev = [], 0
        for c in seq:
            if c != prev and c != 0:
                s.append(c)
            prev = c
        out.append(s)
    return out


@case(
    name="captcha-crnn-adam-lr-1e-5",
    source="https://github.com/littlepai/Unofficial-Zhihu-API/issues/5",
    title="CRNN + CTC captcha recogniser trained with Adam(lr=1e-5): sequence accuracy stays at 0",
    expect="lr-too-low",
    verify=lambda bug, fixed: bug["seq_acc"] < 0.05 and fixed["seq_acc"] > 0.3,
    category="optimization",
)
def program(bug: bool, nb) -> dict[str, float]:
    g = gen(5)
    xt, yt = captchas(1600, g)
    xv, yv = captchas(300, g)
    model = CRNN()
    ctc = nn.CTCLoss(blank=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5 if bug else 1e-3)
    with nb.watch(model, optimizer):
        for _epoch in range(4):
            for images, labels in loader(xt, yt, batch_size=32):
                logp = model(images)
                loss = ctc(
                    logp.transpose(0, 1),
                    labels,
                    torch.full((len(images),), logp.shape[1]),
                    torch.full((len(images),), 4),
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        pred = decode(model(xv))
    acc = sum(p == t for p, t in zip(pred, yv.tolist())) / len(pred)
    return {"seq_acc": acc, "loss": loss.item()}
