"""The written-out arithmetic must give exactly the shape PyTorch produces, for a sweep of configs."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nbdebug.shapes import arithmetic

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXP = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGP = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def _input(n: int, size: int, c: int = 4) -> torch.Tensor:
    return torch.randn(1, c, *([size] * n))


def _check(module: nn.Module, x: torch.Tensor) -> str:
    expected = list(module(x).shape[2:])
    values, text = arithmetic.module_formula(module, tuple(x.shape))
    assert values == expected, (module, text)
    assert text.count("=") >= len(expected)
    return text


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_sweep_matches_pytorch(n):
    sizes = (9, 16) if n < 3 else (9,)
    for size, k, s, p, d, g in itertools.product(sizes, (1, 3, 4), (1, 2, 3), (0, 1, 2), (1, 2), (1, 2)):
        if (size + 2 * p - d * (k - 1) - 1) < 0:
            continue
        _check(CONV[n](4, 4, k, stride=s, padding=p, dilation=d, groups=g), _input(n, size))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv_string_padding(padding):
    _check(nn.Conv2d(4, 8, 3, padding=padding, dilation=2), _input(2, 11))


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 3])
def test_conv_transpose_sweep_matches_pytorch(n):
    sizes = (5, 7) if n < 3 else (5,)
    for size, k, s, p, op, d, g in itertools.product(
        sizes, (1, 3, 4), (1, 2, 3), (0, 1), (0, 1, 2), (1, 2), (1, 2)
    ):
        if op >= max(s, d):
            continue
        _check(
            CONVT[n](4, 4, k, stride=s, padding=p, output_padding=op, dilation=d, groups=g), _input(n, size)
        )


@pytest.mark.parametrize("n", [1, 2, 3])
def test_pool_sweep_matches_pytorch(n):
    sizes = (7, 10) if n < 3 else (7,)
    for size, k, s, p, ceil in itertools.product(sizes, (2, 3), (1, 2, 3), (0, 1), (False, True)):
        if p > k // 2:
            continue
        _check(AVGP[n](k, stride=s, padding=p, ceil_mode=ceil), _input(n, size))
        for d in (1, 2):
            _check(MAXP[n](k, stride=s, padding=p, dilation=d, ceil_mode=ceil), _input(n, size))


def test_adaptive_upsample_flatten_pixelshuffle():
    x = _input(2, 9, c=8)
    _check(nn.AdaptiveAvgPool2d((3, 4)), x)
    _check(nn.AdaptiveMaxPool2d(5), x)
    _check(nn.Upsample(scale_factor=2), x)
    _check(nn.Upsample(size=(13, 5)), x)
    values, _ = arithmetic.module_formula(nn.Flatten(), tuple(x.shape))
    assert values == list(nn.Flatten()(x).shape)
    values, _ = arithmetic.module_formula(nn.PixelShuffle(2), tuple(x.shape))
    assert values == list(nn.PixelShuffle(2)(x).shape[1:])


def test_max_unpool_matches_pytorch():
    x = _input(2, 8)
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    unpool = nn.MaxUnpool2d(2, 2)
    values, _ = arithmetic.module_formula(unpool, tuple(pooled.shape))
    assert values == list(unpool(pooled, idx).shape[2:])


def test_formula_text_uses_the_layers_numbers():
    _, text = arithmetic.module_formula(nn.Conv2d(1, 8, 3, stride=2, padding=1), (8, 1, 28, 28))
    assert "H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14" in text
    _, text = arithmetic.module_formula(
        nn.ConvTranspose2d(8, 1, 3, stride=2, padding=1, output_padding=1), (8, 8, 14, 14)
    )
    assert "H_out = (14 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 28" in text


def test_function_formulas_match_pytorch():
    x = _input(2, 12)
    w = torch.randn(6, 4, 3, 3)
    got, _ = arithmetic.function_formula("conv2d", (x, w), {"stride": 2, "padding": 1})
    assert got == list(F.conv2d(x, w, stride=2, padding=1).shape[2:])
    got, _ = arithmetic.function_formula("max_pool2d", (x, 3), {"stride": 2, "ceil_mode": True})
    assert got == list(F.max_pool2d(x, 3, stride=2, ceil_mode=True).shape[2:])
    got, _ = arithmetic.function_formula("interpolate", (x,), {"scale_factor": 1.5})
    assert got == list(F.interpolate(x, scale_factor=1.5).shape[2:])
    got, _ = arithmetic.function_formula("flatten", (x, 1), {})
    assert got == list(torch.flatten(x, 1).shape)


def test_non_spatial_layers_have_no_formula():
    assert arithmetic.module_formula(nn.Linear(3, 4), (2, 3)) is None
    assert arithmetic.module_formula(nn.ReLU(), (2, 3)) is None
