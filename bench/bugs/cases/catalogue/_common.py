"""Helpers shared by several catalogue cases: seeded synthetic data and the scores the GAN cases verify
with. Nothing here downloads; every generator is private (the global RNG the harness seeds is left to
the programs themselves)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...data import digits

_CACHE: dict[str, object] = {}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- character sequences (makemore-style programs) ------------------------------------------------------
def names(n: int = 3000, seed: int = 7) -> list[str]:
    """`n` synthetic "names" from a fixed random bigram chain over a-z ('.' ends a word), standing in for
    makemore's names.txt: the same 27-token vocabulary and the same statistics-learnable structure."""
    g = gen(seed)
    logits = torch.randn(27, 27, generator=g) * 2.0
    logits[0, 0] = -1e9  # a word never starts with its end
    logits[1:, 0] -= 1.5  # words are a few letters long
    probs = torch.softmax(logits, dim=1)
    out: list[str] = []
    for _ in range(n):
        ix, w = 0, ""
        while True:
            ix = int(torch.multinomial(probs[ix], 1, generator=g))
            if ix == 0 or len(w) >= 12:
                break
            w += chr(ord("a") + ix - 1)
        out.append(w or "a")
    return out


def context_dataset(words: list[str], block_size: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """makemore's build_dataset: (N, block_size) contexts of token ids and (N,) next tokens."""
    stoi = {chr(ord("a") + i): i + 1 for i in range(26)}
    xs, ys = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = 0 if ch == "." else stoi[ch]
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs), torch.tensor(ys)


# -- GAN data and scores ---------------------------------------------------------------------------------
def digits_gan_data() -> torch.Tensor:
    """The digits as (N, 64) vectors in [-1, 1] (a Tanh generator's range), the GAN cases' real data."""
    x, _ = digits(normalize=False)
    return x / 8.0 - 1.0


def _digit_classifier() -> nn.Module:
    """A small classifier of the digits in [-1, 1], trained once per process (deterministic), that the
    GAN cases use to score their samples: which digits G draws, and how confidently."""
    if "clf" not in _CACHE:
        with torch.random.fork_rng(), torch.enable_grad():
            torch.manual_seed(0)
            x = digits_gan_data()
            _, y = digits(normalize=False)
            clf = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
            opt = torch.optim.Adam(clf.parameters(), lr=1e-2)
            for _ in range(150):
                opt.zero_grad()
                nn.functional.cross_entropy(clf(x), y).backward()
                opt.step()
        clf.eval()
        _CACHE["clf"] = clf
    return _CACHE["clf"]  # type: ignore[return-value]


@torch.no_grad()
def gan_scores(samples: torch.Tensor) -> dict[str, float]:
    """Scores of G's samples against the real digits: `modes` (how many of the 10 digits the classifier
    sees among the samples, each at >= 2% of them), `confidence` (mean top class probability),
    `diversity` (mean pairwise distance of the samples / that of as many real digits) and `nn_dist`
    (mean distance of a sample to its nearest real digit)."""
    real = digits_gan_data()
    s = samples.detach().reshape(len(samples), -1).float()
    probs = torch.softmax(_digit_classifier()(s), dim=1)
    counts = torch.bincount(probs.argmax(1), minlength=10).float()
    n = len(s)
    idx = torch.randperm(len(real), generator=gen(3))[:n]
    div_fake = torch.pdist(s).mean().item() if n > 1 else 0.0
    div_real = torch.pdist(real[idx]).mean().item()
    return {
        "modes": float((counts >= max(1.0, 0.02 * n)).sum()),
        "confidence": probs.max(1).values.mean().item(),
        "diversity": div_fake / div_real,
        "nn_dist": torch.cdist(s, real).min(1).values.mean().item(),
    }


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def graph_nodes(t: object) -> int:
    """How many autograd nodes a value still holds (0 for a float or a tensor without history)."""
    fn = getattr(t, "grad_fn", None)
    seen: set[int] = set()
    stack = [fn] if fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(n for n, _ in getattr(node, "next_functions", ()) if n is not None)
    return len(seen)


# -- the 8-Gaussian ring (the standard toy for GAN mode coverage) ---------------------------------------
RING_MODES = torch.stack(
    [torch.tensor([math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)]) * 2.0 for k in range(8)]
)


def ring(n: int, g: torch.Generator, std: float = 0.05) -> torch.Tensor:
    """`n` points from a mixture of 8 Gaussians (std `std`) on a circle of radius 2."""
    k = torch.randint(0, 8, (n,), generator=g)
    return RING_MODES[k] + std * torch.randn(n, 2, generator=g)


@torch.no_grad()
def ring_scores(samples: torch.Tensor) -> dict[str, float]:
    """`modes`: how many of the 8 modes receive >= 2% of the samples within 0.25 of their centre;
    `quality`: the fraction of samples within 0.25 of some mode; `spread`: the samples' mean distance
    to their centroid (0 when G emits one point)."""
    d = torch.cdist(samples, RING_MODES)
    near, which = d.min(1)
    hit = near < 0.25
    counts = torch.bincount(which[hit], minlength=8).float()
    return {
        "modes": float((counts >= 0.02 * len(samples)).sum()),
        "quality": hit.float().mean().item(),
        "spread": (samples - samples.mean(0)).norm(dim=1).mean().item(),
    }
