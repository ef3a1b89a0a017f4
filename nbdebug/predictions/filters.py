"""Filter images and feature maps of convolution layers.

From CS231n ("Visualizing what ConvNets learn", "Layer visualization"): plot the first layer's filters; trained
filters are smooth and structured, noisy ones point to a net that has not converged, too little
regularization, or a learning rate that is too high. `filters(model)` copies a conv layer's weights into
a `FilterView` (filters x channels x kernel), renders them as an image grid, and measures what the eye
sees: `smoothness` is the correlation between neighbouring kernel weights (~0 for random
initialization, towards 1 for smooth filters).

Layout of `FilterView.weight` is always (filters, channels, *kernel):
- Conv: weight (out, in/groups, *k) as stored: each output channel's filter over the input channels.
- ConvTranspose: weight (in, out/groups, *k) as stored: each input channel stamps a kernel onto the
  output channels; so a decoder's last layer with 3 outputs shows RGB stamps.
A filter with 3 channels (2-d kernels) is shown in RGB; otherwise one channel at a time in grayscale.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._core.data import collect, model_device, to_device
from .._core.errors import NbdebugError, describe
from .._core.hooks import HookSet, preserved
from .._core.result import Result

NORMALIZATIONS = ("filter", "global")


@dataclass(frozen=True)
class LayerInfo:
    """A conv layer as the layer dropdown lists it."""

    name: str
    type: str
    weight_shape: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.name}  {self.type} {tuple(self.weight_shape)}"


def conv_layers(model: nn.Module) -> list[LayerInfo]:
    """Every convolution layer (Conv1d/2d/3d, ConvTranspose1d/2d/3d) in the model, in module order."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            w = m.weight
            shape = () if isinstance(w, nn.parameter.UninitializedParameter) else tuple(w.shape)
            out.append(LayerInfo(name or "<root>", type(m).__name__, shape))
    return out


def _resolve(model: nn.Module, layer: Any, layers: list[LayerInfo]) -> tuple[str, nn.Module]:
    if not layers:
        raise NbdebugError(
            f"{type(model).__name__} has no convolution layers (Conv1d/2d/3d, ConvTranspose1d/2d/3d), "
            "so there are no filters to show"
        )
    modules = dict(model.named_modules())
    modules["<root>"] = model
    valid = ", ".join(info.label for info in layers)
    if layer is None:
        name = layers[0].name
    elif isinstance(layer, nn.Module):
        name = next((n or "<root>" for n, m in model.named_modules() if m is layer), None)
        if name is None:
            raise NbdebugError(f"layer {type(layer).__name__} is not part of the model; conv layers: {valid}")
    elif isinstance(layer, int) and not isinstance(layer, bool):
        if not -len(layers) <= layer < len(layers):
            raise NbdebugError(
                f"layer index {layer} is out of range: the model has {len(layers)} conv layers ({valid})"
            )
        name = layers[layer].name
    else:
        name = str(layer)
        if name not in modules:
            raise NbdebugError(f"the model has no layer {name!r}; conv layers: {valid}")
    module = modules[name]
    if not isinstance(module, nn.modules.conv._ConvNd):
        raise NbdebugError(
            f"layer {name!r} is {type(module).__name__}, not a convolution; conv layers: {valid}"
        )
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        raise NbdebugError(
            f"layer {name!r} is a lazy conv whose weights are not initialized yet: run one forward pass first"
        )
    return name, module


def smoothness(weight: torch.Tensor) -> np.ndarray:
    """Per filter: Pearson correlation of neighbouring kernel weights along every spatial axis.

    `weight` is (filters, channels, *kernel). Random initialization gives ~0; smooth, structured
    filters approach 1; a checkerboard gives negative values. NaN for 1-wide kernels."""
    f = weight.shape[0]
    a_parts, b_parts = [], []
    for axis in range(2, weight.dim()):
        if weight.shape[axis] < 2:
            continue
        n = weight.shape[axis]
        a_parts.append(weight.narrow(axis, 0, n - 1).reshape(f, -1))
        b_parts.append(weight.narrow(axis, 1, n - 1).reshape(f, -1))
    if not a_parts:
        return np.full(f, np.nan)
    a = torch.cat(a_parts, 1).double()
    b = torch.cat(b_parts, 1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    denom = (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-30)
    r = (a * b).sum(1) / denom
    r[(a.norm(dim=1) == 0) | (b.norm(dim=1) == 0)] = float("nan")
    return r.numpy()


@dataclass(eq=False, repr=False)
class FilterView(Result):
    """A conv layer's filters (and, when data was given, its feature maps for one example).

    Attributes:
        layer, type: the layer's name and class name.
        weight: (filters, channels, *kernel) CPU float copy (see the module docstring for transposed convs).
        transposed: whether the layer is a ConvTranspose.
        layers: every conv layer of the model (for the layer dropdown).
        normalize: "filter" (each filter scaled on its own) or "global" (one scale for the layer).
        channel: the channel shown in grayscale; None shows RGB when filters have 3 channels, else channel 0.
        feature_maps: (channels, *spatial) output of the layer for `example`, or None.
        example_input: that example's input (CPU), or None.
    """

    layer: str
    type: str
    weight: torch.Tensor
    transposed: bool
    layers: list[LayerInfo] = field(default_factory=list)
    normalize: str = "filter"
    channel: int | None = None
    feature_maps: torch.Tensor | None = None
    example: int | None = None
    example_input: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise NbdebugError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.channel is not None and not 0 <= self.channel < self.n_channels:
            raise NbdebugError(
                f"channel {self.channel} is out of range: layer {self.layer!r} filters have "
                f"{self.n_channels} channel(s)"
            )

    @property
    def n_filters(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return tuple(self.weight.shape[2:])

    @property
    def spatial_dims(self) -> int:
        return self.weight.dim() - 2

    def is_rgb(self, channel: int | None = None) -> bool:
        return channel is None and self.n_channels == 3 and self.spatial_dims == 2

    def images(self, channel: int | None = None, normalize: str | None = None) -> np.ndarray:
        """One image per filter: (F, H, W, 3) in [0, 1] for RGB, else (F, H, W) in [-1, 1] (sign kept,
        zero stays zero). Conv1d filters are (channels x kernel) images; Conv3d depth slices are laid side
        by side with a NaN gap. Uses the view's `channel`/`normalize` when not given."""
        channel = self.channel if channel is None else channel
        normalize = normalize or self.normalize
        if normalize not in NORMALIZATIONS:
            raise NbdebugError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
        if channel is not None and not 0 <= channel < self.n_channels:
            raise NbdebugError(
                f"channel {channel} is out of range: filters have {self.n_channels} channel(s)"
            )
        w = self.weight
        per_filter = normalize == "filter"
        if self.is_rgb(channel):
            x = w.permute(0, 2, 3, 1)  # F, H, W, 3
            if per_filter:
                lo = x.reshape(len(x), -1).min(1).values.view(-1, 1, 1, 1)
                hi = x.reshape(len(x), -1).max(1).values.view(-1, 1, 1, 1)
            else:
                lo, hi = x.min(), x.max()
            span = hi - lo
            out = torch.where(span > 0, (x - lo) / torch.where(span > 0, span, 1), 0.5 * torch.ones_like(x))
            return out.numpy()
        if self.spatial_dims == 1:
            x = w  # F, C, K: channels as rows
        else:
            x = w[:, 0 if channel is None else channel]  # F, *kernel
        scale = x.reshape(len(x), -1).abs().max(1).values if per_filter else x.abs().max().expand(len(x))
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        x = x / scale.view(-1, *([1] * (x.dim() - 1)))
        if x.dim() == 4:  # 3-d kernels: F, D, H, W -> F, H, D*(W+1)-1 with NaN gaps
            f, d, h, wd = x.shape
            gap = torch.full((f, h, 1), float("nan"))
            slices = []
            for i in range(d):
                slices.append(x[:, i])
                if i < d - 1:
                    slices.append(gap)
            x = torch.cat(slices, dim=2)
        return x.numpy()

    def to_frame(self) -> pd.DataFrame:
        """One row per filter: L2 norm, mean, std and smoothness (neighbour correlation)."""
        flat = self.weight.reshape(self.n_filters, -1)
        return pd.DataFrame(
            {
                "norm": flat.norm(dim=1).numpy(),
                "mean": flat.mean(1).numpy(),
                "std": flat.std(1, unbiased=False).numpy(),
                "smoothness": smoothness(self.weight),
            },
            index=pd.Index(range(self.n_filters), name="filter"),
        )

    def with_options(self, channel: int | None = None, normalize: str | None = None) -> FilterView:
        """The same weights shown with another channel / normalization (no recomputation)."""
        return FilterView(
            self.layer, self.type, self.weight, self.transposed, self.layers,
            normalize or self.normalize, channel, self.feature_maps, self.example, self.example_input,
        )  # fmt: skip

    def summary(self) -> str:
        kernel = "x".join(map(str, self.kernel_size))
        smooth = np.nanmean(smoothness(self.weight)) if self.weight.numel() else float("nan")
        shown = "RGB" if self.is_rgb(self.channel) else f"channel {self.channel or 0} (grayscale)"
        if self.spatial_dims == 1:
            shown = "channels as rows"
        return (
            f"{self.layer}: {self.type} weight {tuple(self.weight.shape)} -> {self.n_filters} filters of "
            f"{self.n_channels} channel(s) x {kernel}; shown {shown}, normalized per {self.normalize}; "
            f"mean smoothness {smooth:.2f} (~0 random, -> 1 smooth)"
        )

    def to_text(self) -> str:
        text = self.summary()
        if self.feature_maps is not None:
            text += f"\nfeature maps for example {self.example}: {tuple(self.feature_maps.shape)}"
        return text

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .filters_plot import feature_maps_figure, filters_figure

        parts = [f'<div class="nbdebug-filters"><p>{html.escape(self.summary())}</p>']
        parts.append(png_html(figure_png(filters_figure(self)), alt=f"filters of {self.layer}"))
        if self.feature_maps is not None:
            parts.append(png_html(figure_png(feature_maps_figure(self)), alt=f"feature maps of {self.layer}"))
        parts.append("</div>")
        return "".join(parts)

    def panel(self, model: nn.Module | None = None, data: Any = None) -> Any:
        """The interactive panel; with `model` the layer dropdown can switch layers."""
        from .panel import FiltersPanel

        return FiltersPanel(self, model=model, data=data)


def feature_maps(model: nn.Module, layer: Any, x: torch.Tensor) -> torch.Tensor:
    """The output of conv `layer` for input batch `x`, in eval mode under no_grad (model restored)."""
    name, module = _resolve(model, layer, conv_layers(model))
    captured: list[torch.Tensor] = []
    device = model_device(model)
    with preserved(model), HookSet() as hooks, torch.no_grad():
        model.eval()
        hooks.forward(module, lambda m, i, o: captured.append(o.detach().float().cpu()))
        model(to_device(x, device))
    if not captured:
        raise NbdebugError(f"layer {name!r} was not called in the forward pass of {describe(x)}")
    return captured[0]


def filters(
    model: nn.Module,
    layer: str | int | nn.Module | None = None,
    *,
    data: Any = None,
    example: int = 0,
    normalize: str = "filter",
    channel: int | None = None,
) -> FilterView:
    """A conv layer's filters as images, plus its feature maps for one example of `data` if given.

    Args:
        layer: a module name from `model.named_modules()`, an index into the conv layers, the module
            itself, or None for the first conv layer.
        data: anything `predictions` accepts; example number `example` is run through the model.
        normalize: "filter" scales each filter on its own, "global" uses one scale for the layer (so
            filter strengths compare).
        channel: the input channel to show in grayscale; None shows RGB when filters have 3 channels.
    """
    if not isinstance(model, nn.Module):
        raise NbdebugError(f"model must be a torch.nn.Module, got {describe(model)}")
    layers = conv_layers(model)
    name, module = _resolve(model, layer, layers)
    weight = module.weight.detach().float().cpu().clone()
    view = FilterView(
        layer=name,
        type=type(module).__name__,
        weight=weight,
        transposed=bool(module.transposed),
        layers=layers,
        normalize=normalize,
        channel=channel,
    )
    if data is not None:
        (x, *_), _ = collect(data, example + 1)
        if example >= len(x):
            raise NbdebugError(f"example {example} is out of range: data has {len(x)} examples")
        view.example = example
        view.example_input = x[example].detach().cpu()
        view.feature_maps = feature_maps(model, name, x[example : example + 1])[0]
    return view
