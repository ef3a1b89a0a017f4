"""FocalLoss against torch's CrossEntropyLoss (gamma=0) and against the focal formula written out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nbdebug import FocalLoss, NbdebugError


def _data(n=32, c=5, extra=()):
    logits = torch.randn(n, c, *extra, requires_grad=True)
    target = torch.randint(0, c, (n, *extra))
    return logits, target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gamma_zero_is_cross_entropy_value_and_gradient(reduction, weighted):
    logits, target = _data()
    weight = torch.rand(5) + 0.1 if weighted else None
    ce = nn.CrossEntropyLoss(weight=weight, reduction=reduction)(logits, target)
    fl = FocalLoss(gamma=0.0, alpha=weight, reduction=reduction)(logits, target)
    torch.testing.assert_close(fl, ce)
    (g_ce,) = torch.autograd.grad(ce.sum(), logits)
    (g_fl,) = torch.autograd.grad(fl.sum(), logits)
    torch.testing.assert_close(g_fl, g_ce)


def test_gamma_zero_matches_cross_entropy_with_ignore_index_and_spatial_input():
    logits, target = _data(4, 3, extra=(5, 6))
    target[0, 0, :3] = -100
    weight = torch.tensor([0.2, 1.0, 3.0])
    ce = nn.CrossEntropyLoss(weight=weight)(logits, target)
    fl = FocalLoss(gamma=0.0, alpha=weight)(logits, target)
    torch.testing.assert_close(fl, ce)


def test_focal_term_matches_the_formula_written_out():
    logits, target = _data()
    alpha = torch.rand(5)
    got = FocalLoss(gamma=2.0, alpha=alpha, reduction="none")(logits, target)
    p = torch.softmax(logits, 1)[torch.arange(32), target]
    expected = -alpha[target] * (1 - p) ** 2 * torch.log(p)
    torch.testing.assert_close(got, expected)
    mean = FocalLoss(gamma=2.0, alpha=alpha)(logits, target)
    torch.testing.assert_close(mean, expected.sum() / alpha[target].sum())


def test_scalar_alpha_scales_the_loss():
    logits, target = _data()
    base = FocalLoss(gamma=1.0)(logits, target)
    torch.testing.assert_close(FocalLoss(gamma=1.0, alpha=0.25)(logits, target), 0.25 * base)


def test_easy_examples_are_down_weighted_relative_to_hard_ones():
    # one confident correct example and one confident wrong one
    logits = torch.tensor([[6.0, 0.0], [0.0, 0.5]])
    target = torch.tensor([0, 0])
    ce = nn.CrossEntropyLoss(reduction="none")(logits, target)
    fl = FocalLoss(gamma=2.0, reduction="none")(logits, target)
    assert fl[0] / ce[0] < 1e-4  # easy: (1 - 0.9975)^2
    assert fl[1] / ce[1] > 0.3  # hard: (1 - 0.38)^2


def test_gradient_is_finite_when_the_prediction_is_certain():
    logits = torch.tensor([[100.0, -100.0]], requires_grad=True)
    FocalLoss(gamma=0.5)(logits, torch.tensor([0])).backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_inputs_name_the_shapes():
    loss = FocalLoss()
    with pytest.raises(NbdebugError, match=r"class indices of shape \(4,\).*Tensor\(4, 3\) float32"):
        loss(torch.randn(4, 3), torch.rand(4, 3))
    with pytest.raises(NbdebugError, match=r"logits of shape \(N, C\)"):
        loss(torch.randn(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(NbdebugError, match=r"alpha has 2 class weights but the input has 3 classes"):
        FocalLoss(alpha=[1.0, 2.0])(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(NbdebugError, match=r"class indices \[7\] outside \[0, 3\)"):
        loss(torch.randn(2, 3), torch.tensor([0, 7]))
    with pytest.raises(NbdebugError, match="gamma must be >= 0"):
        FocalLoss(gamma=-1)


def test_alpha_moves_with_the_module_and_is_saved():
    loss = FocalLoss(alpha=[1.0, 2.0]).to(torch.float64)
    assert "weight" in loss.state_dict()
    logits = torch.randn(3, 2, dtype=torch.float64)
    assert loss(logits, torch.tensor([0, 1, 1])).dtype == torch.float64
