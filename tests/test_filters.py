"""filters(): conv layer listing, filter images, smoothness, feature maps, errors and state handling."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.hooks import hook_counts
from nbdebug.predictions.filters import FilterView, conv_layers, feature_maps, smoothness


def cnn():
    return nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.3),
        nn.Conv2d(6, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 14 * 14, 2),
    )  # fmt: skip


def test_lists_every_conv_kind_with_shapes():
    model = nn.ModuleDict(
        {
            "a": nn.Conv1d(2, 3, 4),
            "b": nn.Conv3d(1, 2, 3),
            "c": nn.ConvTranspose2d(5, 3, 4),
            "d": nn.Linear(3, 3),
            "e": nn.ConvTranspose1d(2, 2, 3, groups=2),
        }
    )
    layers = conv_layers(model)
    assert [(i.name, i.type, i.weight_shape) for i in layers] == [
        ("a", "Conv1d", (3, 2, 4)),
        ("b", "Conv3d", (2, 1, 3, 3, 3)),
        ("c", "ConvTranspose2d", (5, 3, 4, 4)),
        ("e", "ConvTranspose1d", (2, 1, 3)),
    ]
    assert "Conv1d (3, 2, 4)" in layers[0].label


def test_first_layer_with_three_channels_is_rgb_and_normalizations_differ():
    model = cnn()
    v = nbdebug.filters(model)
    assert v.layer == "0" and v.n_filters == 6 and v.n_channels == 3 and v.is_rgb()
    imgs = v.images()
    assert imgs.shape == (6, 5, 5, 3)
    w = model[0].weight.detach().permute(0, 2, 3, 1)
    f0 = (w[0] - w[0].min()) / (w[0].max() - w[0].min())
    np.testing.assert_allclose(imgs[0], f0.numpy(), rtol=1e-5, atol=1e-6)
    for i in range(6):  # per filter: every filter spans the full [0, 1] range
        assert imgs[i].min() == pytest.approx(0) and imgs[i].max() == pytest.approx(1)
    g = v.images(normalize="global")
    assert g.min() == pytest.approx(0) and g.max() == pytest.approx(1)
    assert sum(g[i].max() == pytest.approx(1) for i in range(6)) == 1  # only the largest reaches 1
    gray = v.images(channel=2)
    assert gray.shape == (6, 5, 5)
    np.testing.assert_allclose(
        gray[1], (model[0].weight[1, 2] / model[0].weight[1, 2].abs().max()).detach().numpy(), rtol=1e-5
    )


def test_select_layer_by_name_index_and_module():
    model = cnn()
    for layer in ("4", 1, -1, model[4]):
        v = nbdebug.filters(model, layer)
        assert v.layer == "4" and v.weight.shape == (4, 6, 3, 3) and not v.is_rgb()
        assert v.images().shape == (4, 3, 3)


def test_conv1d_conv3d_and_transposed_layouts():
    v1 = nbdebug.filters(nn.Conv1d(2, 4, 5))
    assert v1.images().shape == (4, 2, 5)  # channels as rows
    v3 = nbdebug.filters(nn.Conv3d(1, 2, (2, 3, 4)))
    img = v3.images()
    assert img.shape == (2, 3, 2 * 4 + 1) and np.isnan(img[:, :, 4]).all()
    t = nn.ConvTranspose2d(4, 3, 4)
    vt = nbdebug.filters(nn.Sequential(t))
    assert vt.transposed and vt.weight.shape == (4, 3, 4, 4) and vt.is_rgb()  # input channels stamp RGB
    for v in (v1, v3, vt):
        assert "text/html" in v._repr_mimebundle_()


def test_smoothness_is_zero_for_noise_and_one_for_smooth_filters():
    torch.manual_seed(0)
    noise = torch.randn(200, 1, 7, 7)
    assert abs(float(np.mean(smoothness(noise)))) < 0.03
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 7), torch.linspace(-1, 1, 7), indexing="ij")
    gauss = torch.exp(-(xx**2 + yy**2) / 0.5).expand(3, 1, 7, 7)
    assert (smoothness(gauss) > 0.7).all()
    checker = ((-1.0) ** (torch.arange(7)[:, None] + torch.arange(7))).expand(1, 1, 7, 7)
    assert smoothness(checker)[0] == pytest.approx(-1)
    assert np.isnan(smoothness(torch.randn(2, 3, 1, 1))).all()
    frame = nbdebug.filters(nn.Conv2d(1, 4, 3)).to_frame()
    assert list(frame.columns) == ["norm", "mean", "std", "smoothness"] and len(frame) == 4


def test_feature_maps_match_the_layer_output_in_eval_mode():
    model = cnn()
    x = torch.randn(5, 3, 16, 16)
    v = nbdebug.filters(model, "4", data=(x, torch.zeros(5)), example=3)
    model.eval()
    with torch.no_grad():
        expected = model[:5](x[3:4])[0]
    model.train()
    torch.testing.assert_close(v.feature_maps, expected)
    assert v.example == 3 and v.example_input.shape == (3, 16, 16)
    bundle = v._repr_mimebundle_()
    assert "feature maps for example 3: (4, 14, 14)" in bundle["text/plain"]
    assert bundle["text/html"].count("<img") == 2


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_state_restored_when_forward_fails(exc):
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)

        def forward(self, x):
            self.bn(self.conv(x))
            raise exc("boom")

    model = Boom().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = hook_counts(model)
    with pytest.raises(exc, match="boom"):
        feature_maps(model, "conv", torch.randn(2, 1, 6, 6))
    assert model.training and model.bn.training and hook_counts(model) == hooks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # the successful path too: BatchNorm statistics untouched, mode kept
    model2 = cnn().train()
    before2 = {k: v.clone() for k, v in model2.state_dict().items()}
    nbdebug.filters(model2, data=torch.randn(2, 3, 16, 16))
    assert model2.training and all(torch.equal(v, before2[k]) for k, v in model2.state_dict().items())
    assert hook_counts(model2) == {}


def test_bad_inputs_name_the_culprit():
    model = cnn()
    with pytest.raises(
        NbdebugError, match=r"no layer 'conv9'; conv layers: 0  Conv2d \(6, 3, 5, 5\), 4  Conv2d"
    ):
        nbdebug.filters(model, "conv9")
    with pytest.raises(NbdebugError, match=r"layer '7' is Linear, not a convolution"):
        nbdebug.filters(model, "7")
    with pytest.raises(NbdebugError, match=r"Sequential has no convolution layers"):
        nbdebug.filters(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(NbdebugError, match=r"layer index 5 is out of range: the model has 2 conv layers"):
        nbdebug.filters(model, 5)
    with pytest.raises(NbdebugError, match=r"channel 3 is out of range: layer '0' filters have 3 channel"):
        nbdebug.filters(model, channel=3)
    with pytest.raises(NbdebugError, match=r"normalize must be one of"):
        nbdebug.filters(model, normalize="layer")
    with pytest.raises(NbdebugError, match=r"lazy conv whose weights are not initialized"):
        nbdebug.filters(nn.Sequential(nn.LazyConv2d(4, 3)))
    with pytest.raises(NbdebugError, match=r"example 9 is out of range: data has 2 examples"):
        nbdebug.filters(model, data=torch.randn(2, 3, 16, 16), example=9)


def test_name_stays_callable_after_the_submodule_is_imported():
    module = importlib.import_module("nbdebug.predictions.filters")

    assert isinstance(module.filters(cnn()), FilterView)
    assert isinstance(nbdebug.filters(cnn()), FilterView)
