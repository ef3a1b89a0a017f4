"""Helpers shared by the real-world cases: weight snapshots (to show that a layer did or did not move) and
small seeded synthetic data sets for the programs whose original data is not images of digits (point
clouds, token sequences, names, paired images). Every generator uses its own seeded torch.Generator, so
the global RNG the harness seeds is left to the program itself."""

from __future__ import annotations

import torch
from torch import nn


def snapshot(*modules: nn.Module) -> list[torch.Tensor]:
    """Copies of every parameter of `modules`, to compare after training."""
    return [p.detach().clone() for m in modules for p in m.parameters()]


def moved(before: list[torch.Tensor], *modules: nn.Module) -> float:
    """Largest absolute change of any parameter of `modules` since `snapshot` (0.0: untouched)."""
    after = [p.detach() for m in modules for p in m.parameters()]
    return max(float((a - b).abs().max()) for a, b in zip(after, before))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def point_clouds(n: int, n_points: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, n_points) point clouds of four shapes (sphere surface, cube surface, cylinder, flat disc),
    randomly rotated about z and scaled; labels 0..3. Stands in for ModelNet/ShapeNet."""
    g = gen(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    pts = torch.empty(n, n_points, 3)
    for i in range(n):
        k = int(y[i])
        if k == 0:  # sphere surface
            v = torch.randn(n_points, 3, generator=g)
            v = v / v.norm(dim=1, keepdim=True)
        elif k == 1:  # cube surface
            v = torch.rand(n_points, 3, generator=g) * 2 - 1
            face = torch.randint(0, 3, (n_points,), generator=g)
            sign = torch.randint(0, 2, (n_points,), generator=g).float() * 2 - 1
            v[torch.arange(n_points), face] = sign
        elif k == 2:  # cylinder side
            t = torch.rand(n_points, generator=g) * 6.2832
            v = torch.stack([t.cos(), t.sin(), torch.rand(n_points, generator=g) * 2 - 1], 1)
        else:  # flat disc
            r = torch.rand(n_points, generator=g).sqrt()
            t = torch.rand(n_points, generator=g) * 6.2832
            v = torch.stack([r * t.cos(), r * t.sin(), 0.05 * torch.randn(n_points, generator=g)], 1)
        a = float(torch.rand(1, generator=g)) * 6.2832
        rot = torch.tensor([[torch.cos(torch.tensor(a)), -torch.sin(torch.tensor(a)), 0.0],
                            [torch.sin(torch.tensor(a)), torch.cos(torch.tensor(a)), 0.0],
                            [0.0, 0.0, 1.0]])  # fmt: skip
        scale = 0.8 + 0.4 * float(torch.rand(1, generator=g))
        pts[i] = (v @ rot.T) * scale + 0.02 * torch.randn(n_points, 3, generator=g)
    return pts.transpose(1, 2).contiguous(), y


def token_classes(
    n: int, seq_len: int = 20, vocab: int = 50, n_classes: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, seq_len) token ids and (n,) labels: each class has three 'keyword' tokens, and a sequence of
    class c holds a few keywords of c among random filler tokens (ids 0..vocab-1, keywords at the top).
    Stands in for sentence classification data (SST, IMDB, TREC)."""
    g = gen(seed)
    filler = vocab - 3 * n_classes
    x = torch.randint(0, filler, (n, seq_len), generator=g)
    y = torch.randint(0, n_classes, (n,), generator=g)
    for i in range(n):
        c = int(y[i])
        pos = torch.randperm(seq_len, generator=g)[:3]
        kw = filler + 3 * c + torch.randint(0, 3, (3,), generator=g)
        x[i, pos] = kw
    return x, y


def names(n: int, n_classes: int = 5, seed: int = 0) -> tuple[list[str], torch.Tensor, str]:
    """Synthetic 'surnames' of `n_classes` origins, each origin with its own letter distribution
    (stands in for the char-RNN tutorial's names/*.txt). Returns (names, labels, alphabet)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    g = gen(seed)
    probs = torch.rand(n_classes, len(alphabet), generator=g) ** 4  # peaked per-origin letter frequencies
    probs = probs / probs.sum(1, keepdim=True)
    y = torch.randint(0, n_classes, (n,), generator=g)
    out = []
    for i in range(n):
        length = int(torch.randint(4, 8, (1,), generator=g))
        idx = torch.multinomial(probs[int(y[i])], length, replacement=True, generator=g)
        out.append("".join(alphabet[j] for j in idx.tolist()))
    return out, y, alphabet


def pretrained_cnn(n_out: int = 10, epochs: int = 8) -> nn.Module:
    """A small CNN 'pre-trained' on the first 800 digits (Adam, a few epochs, not watched): the stand-in
    for an ImageNet backbone in the transfer-learning programs. Returns a model with .features and .fc."""
    from ...data import digits_images

    x, y = digits_images()
    xo, yo = x[:800], y[:800]
    model = nn.Sequential()
    model.features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    model.fc = nn.Linear(32, n_out)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = gen(4)
    for _ in range(epochs):
        perm = torch.randperm(len(xo), generator=g)
        for i in range(0, len(xo), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xo[idx]), yo[idx]).backward()
            opt.step()
    return model


def new_task_digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Digits 5-9 among the examples the backbone was not pre-trained on, relabelled 0-4 and split 350 /
    rest: the 'new task' of the transfer-learning programs."""
    from ...data import digits_images

    x, y = digits_images()
    x, y = x[800:], y[800:]
    new = y >= 5
    xn, yn = x[new], y[new] - 5
    return xn[:350], yn[:350], xn[350:], yn[350:]


class PointNetCls(nn.Module):
    """PointNet classifier (shared per-point MLP as 1x1 Conv1d, max-pool, FC head with BatchNorm), scaled
    to 64-dim global features; `out` chooses what forward returns: 'logits', 'log_softmax' (dim=1) or
    'log_softmax_dim0' (the batch dimension)."""

    def __init__(self, k: int = 4, out: str = "log_softmax") -> None:
        super().__init__()
        self.out = out
        self.conv1, self.conv2, self.conv3 = nn.Conv1d(3, 32, 1), nn.Conv1d(32, 64, 1), nn.Conv1d(64, 128, 1)
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(32), nn.BatchNorm1d(64), nn.BatchNorm1d(128)
        self.fc1, self.fc2, self.fc3 = nn.Linear(128, 64), nn.Linear(64, 32), nn.Linear(32, k)
        self.bn4, self.bn5 = nn.BatchNorm1d(64), nn.BatchNorm1d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2)[0]
        x = torch.relu(self.bn4(self.fc1(x)))
        x = torch.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)
        if self.out == "logits":
            return x
        return torch.log_softmax(x, dim=0 if self.out == "log_softmax_dim0" else 1)


def segmentation_digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 8, 8) digits with a random contrast (x0.3-3) and brightness (+-4) per image, scaled by 1/16,
    and the (N, 1, 8, 8) foreground mask (original pixel > 6): a stand-in for the salient-object / referring
    segmentation images, whose per-image statistics vary a lot."""
    from ...data import digits_images

    x, _ = digits_images(normalize=False)
    g = gen(seed)
    a = 0.3 + 2.7 * torch.rand(len(x), 1, 1, 1, generator=g)
    b = torch.rand(len(x), 1, 1, 1, generator=g) * 8 - 4
    return (x * a + b) / 16, (x > 6).float()


def seg_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 1, 1),
    )  # fmt: skip


def iou(logits: torch.Tensor, mask: torch.Tensor) -> float:
    pred = (logits > 0).float()
    return float((pred * mask).sum() / ((pred + mask) > 0).float().sum())


# -- SRGAN networks (SRResNet generator, conv discriminator), 4x4 -> 8x8 --------------------------------
class ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1),
            nn.BatchNorm2d(c),
            nn.PReLU(),
            nn.Conv2d(c, c, 3, 1, 1),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(1, 32, 3, 1, 1), nn.PReLU())
        self.trunk = nn.Sequential(ResidualBlock(32), ResidualBlock(32))
        self.upsample = nn.Sequential(nn.Conv2d(32, 128, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU())
        self.conv3 = nn.Conv2d(32, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        return self.conv3(self.upsample(out + self.trunk(out)))


def sr_discriminator() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64),
        nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64 * 16, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1),
    )  # fmt: skip
