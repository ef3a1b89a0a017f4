"""Small data sets the corpus programs share; nothing downloads (scikit-learn's bundled digits and
synthetic tensors). Programs keep their own models, loops and hyperparameters, as their sources wrote
them; only the data is swapped for something that runs on a CPU in seconds."""

from __future__ import annotations

import torch

_DIGITS: dict[str, torch.Tensor] = {}


def digits(normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 8x8 digits as (N, 64) float32 inputs in [0, 16] (or standardized) and (N,) labels."""
    if not _DIGITS:
        from sklearn.datasets import load_digits

        d = load_digits()
        _DIGITS["x"] = torch.tensor(d.data, dtype=torch.float32)
        _DIGITS["y"] = torch.tensor(d.target)
    x, y = _DIGITS["x"], _DIGITS["y"]
    if normalize:
        x = (x - x.mean()) / x.std()
    return x.clone(), y.clone()


def digits_images(normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as (N, 1, 8, 8) images, for the convolutional programs."""
    x, y = digits(normalize)
    return x.reshape(-1, 1, 8, 8), y


def split(x: torch.Tensor, y: torch.Tensor, train: int = 1400) -> tuple[tuple, tuple]:
    """A fixed shuffled train/validation split (seeded, independent of the global RNG)."""
    g = torch.Generator().manual_seed(1234)
    perm = torch.randperm(len(x), generator=g)
    a, b = perm[:train], perm[train:]
    return (x[a], y[a]), (x[b], y[b])


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = True, **kw):
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, **kw)


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy in eval mode under no_grad; the model's mode is put back."""
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was)
    return acc
