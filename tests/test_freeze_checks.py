"""frozen-by-accident from the model's layers: frozen at PyTorch's default initialization (pytorch/vision#2164)
and an inverted freeze (wannabeOG/MAS-PyTorch#1). Each is tested at the edge of its evidence, and a
pretrained backbone frozen on purpose stays silent."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug.monitor.freeze_checks import SPREAD, _default_init
from tests.watch_loops import serious, single_thread  # noqa: F401  (autouse fixture)


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3),
    )  # fmt: skip


def batches(n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(n)
    ]


def pretrain(model: nn.Module, steps: int = 60) -> nn.Module:
    """A stand-in for pretrained weights: Adam at 1e-2 on a different labelling."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in batches(steps, seed=1):
        opt.zero_grad()
        F.cross_entropy(model(x), (y + 1) % 3).backward()
        opt.step()
    return model


def run(model: nn.Module):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.02, momentum=0.9)
    with nbdebug.watch(model, opt) as w:
        for x, y in batches():
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    assert w.internal_errors == []
    return w


def frozen(w):
    return [f for f in w.findings if f.code == "frozen-by-accident"]


def test_default_init_signature_at_the_edge_of_the_spread():
    conv = nn.Conv2d(8, 8, 3)
    assert _default_init(conv)
    bound = 1 / math.sqrt(8 * 9)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = bound * (1 - 1e-6)  # at the bound: still the default init
    assert _default_init(conv)
    with torch.no_grad():
        conv.weight[0, 0, 0, 0] = bound * (1 + 2e-5)  # just past it: not any more
    assert not _default_init(conv)
    # a uniform whose spread is just inside / just outside the tolerance around bound/sqrt(3)
    with torch.no_grad():
        u = torch.rand_like(conv.weight) * 2 - 1
        u = u / u.std() * (bound / math.sqrt(3))
        conv.weight.copy_(u.clamp(-bound, bound) * (1 - SPREAD / 2))
    assert _default_init(conv)
    with torch.no_grad():
        conv.weight.mul_((1 - SPREAD * 1.2) / (1 - SPREAD / 2))
    assert not _default_init(conv)
    assert not _default_init(nn.Linear(2, 2))  # 4 values say nothing
    bn = nn.BatchNorm2d(4)
    assert _default_init(bn)
    with torch.no_grad():
        bn.weight[0] = 1.01
    assert not _default_init(bn)


def test_layers_frozen_at_their_random_initialization_are_a_warning():
    torch.manual_seed(0)
    model = cnn()
    stem = [model[0].weight.detach().clone()]
    for m in (model[0], model[1], model[3]):  # the helper freezes everything before "layer2"
        m.requires_grad_(False)
    w = run(model)
    (f,) = frozen(w)
    assert f.severity == "warning" and f.evidence["kind"] == "at-init" and w.found_at(f.code) == 1
    assert f.evidence["layers"] == ["0", "1", "3"]
    assert torch.equal(model[0].weight, stem[0])


def test_frozen_weights_with_the_init_signature_but_no_norm_layer_are_advice():
    """Without a norm layer at exactly 1 and 0, the uniform signature could be a briefly pretrained layer."""
    torch.manual_seed(0)
    model = cnn()
    model[1] = nn.Identity()
    for m in (model[0], model[3]):
        m.requires_grad_(False)
    (f,) = frozen(run(model))
    assert f.severity == "info" and f.evidence["layers"] == ["0", "3"] and not f.evidence["conclusive"]


def test_the_same_layers_frozen_after_pretraining_are_silent():
    torch.manual_seed(0)
    model = pretrain(cnn())
    for m in (model[0], model[1], model[3]):
        m.requires_grad_(False)
    w = run(model)
    assert frozen(w) == [] and serious(w) == []


def test_a_new_head_at_its_initialization_that_trains_is_not_frozen_and_silent():
    torch.manual_seed(0)
    model = pretrain(cnn())
    model[8] = nn.Linear(8 * 8 * 8, 16)  # new layers, trainable, at init: normal fine-tuning
    model.requires_grad_(False)
    model[8].requires_grad_(True)
    model[10].requires_grad_(True)
    assert frozen(run(model)) == []


def test_an_inverted_freeze_of_a_pretrained_model_is_advice_and_the_fix_is_silent():
    torch.manual_seed(0)
    model = pretrain(cnn())
    model[5].requires_grad_(False)  # the last conv frozen, the first ones and the head train
    model[3].requires_grad_(False)
    (f,) = frozen(run(model))
    assert f.severity == "info" and f.evidence["kind"] == "inverted" and f.evidence["layers"] == ["3", "5"]
    torch.manual_seed(0)
    fixed = pretrain(cnn())
    for m in (fixed[0], fixed[1], fixed[3]):  # the early layers frozen, the later ones train
        m.requires_grad_(False)
    assert frozen(run(fixed)) == []


def test_a_new_input_layer_trained_with_the_head_around_a_frozen_body_is_silent():
    """Adapting a pretrained body to new inputs: a new first layer (at its init) and the head train."""
    torch.manual_seed(0)
    model = pretrain(cnn())
    model.requires_grad_(False)
    model[0] = nn.Conv2d(1, 8, 3, padding=1)
    model[10].requires_grad_(True)
    assert frozen(run(model)) == []
