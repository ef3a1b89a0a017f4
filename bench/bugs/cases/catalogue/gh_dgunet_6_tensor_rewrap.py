"""DGUNet's multi-stage restoration loss rebuilt with torch.tensor([...], requires_grad=True).

Source: MC-E/Deep-Generalized-Unfolding-Networks-for-Image-Restoration issue #6, "About Loss"
https://github.com/MC-E/Deep-Generalized-Unfolding-Networks-for-Image-Restoration/issues/6
Reported: np.sum over the per-stage losses raised a numpy/CUDA error, so the reporter wrote
`loss_char = torch.tensor([criterion_char(restored[j], target) for j in ...], requires_grad=True).sum()`
(same for the edge loss), and "found the psnr will not change during training". The maintainer: it is a
numpy version issue; with the per-stage loss tensors summed directly the model trains. Scaled down: a
3-stage residual restorer on noisy 8x8 digits, Charbonnier + edge losses per stage, Adam 2e-4 as in the
repo's training script.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case
from ._common import gen


class CharbonnierLoss(nn.Module):
    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.mean(torch.sqrt((x - y) ** 2 + self.eps * self.eps))


class EdgeLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        k = torch.tensor([[0.05, 0.25, 0.4, 0.25, 0.05]])
        self.register_buffer("kernel", (k.t() @ k)[None, None])
        self.loss = CharbonnierLoss()

    def laplacian(self, img: torch.Tensor) -> torch.Tensor:
        return img - F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), self.kernel)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.laplacian(x), self.laplacian(y))


class Stage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.PReLU(), nn.Conv2d(16, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        return x + self.body(torch.cat([x, noisy], 1))


class Restorer(nn.Module):
    def __init__(self, stages: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList(Stage() for _ in range(stages))

    def forward(self, noisy: torch.Tensor) -> list[torch.Tensor]:
        x, outs = noisy, []
        for stage in self.stages:
            x = stage(x, noisy)
            outs.append(x)
        return outs[::-1]  # the repo returns the last stage first


@case(
    name="restoration-loss-rewrapped-torch-tensor",
    source="https://github.com/MC-E/Deep-Generalized-Unfolding-Networks-for-Image-Restoration/issues/6",
    title="per-stage losses collected with torch.tensor([...], requires_grad=True): the graph is cut",
    expect="no-grad",
    verify=lambda bug, fixed: bug["psnr_gain"] < 0.1 and fixed["psnr_gain"] > 2.0,
    quick=True,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, _), (xv, _) = split(*digits_images())
    g = gen(6)
    noise_t, noise_v = 0.5 * torch.randn(xt.shape, generator=g), 0.5 * torch.randn(xv.shape, generator=g)
    model = Restorer()
    criterion_char, criterion_edge = CharbonnierLoss(), EdgeLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999), eps=1e-8)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            model.train()
            for target, noise in loader(xt, noise_t, batch_size=16):
                optimizer.zero_grad()
                restored = model(target + noise)
                if bug:
                    loss_char = torch.tensor(
                        [criterion_char(restored[j], target) for j in range(len(restored))],
                        requires_grad=True,
                    ).sum()
                    loss_edge = torch.tensor(
                        [criterion_edge(restored[j], target) for j in range(len(restored))],
                        requires_grad=True,
                    ).sum()
                else:
                    loss_char = sum(criterion_char(restored[j], target) for j in range(len(restored)))
                    loss_edge = sum(criterion_edge(restored[j], target) for j in range(len(restored)))
                loss = loss_char + 0.05 * loss_edge
                loss.backward()
                optimizer.step()
    model.eval()
    with torch.no_grad():
        rng = (xv.max() - xv.min()).item()
        mse_in = F.mse_loss(xv + noise_v, xv).item()
        mse_out = F.mse_loss(model(xv + noise_v)[0], xv).item()
    psnr = lambda m: 10 * torch.log10(torch.tensor(rng**2 / m)).item()  # noqa: E731
    return {"psnr_gain": psnr(mse_out) - psnr(mse_in)}
