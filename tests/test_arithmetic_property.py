"""Property: for random conv / transposed-conv / pool / upsample stacks (1d, 2d, 3d; modules and their
functional forms; random kernel, stride, padding, dilation, ceil_mode, output sizes), the shapes `trace`
writes out (every step's `output_shapes` and the last number of each line of its `formula`) are the
shapes PyTorch produces.

The stacks are drawn layer by layer: each layer's parameters are drawn within PyTorch's documented
constraints for the size that reaches it, and PyTorch itself, run on the real tensor, is the oracle.
Derandomized and bounded, so the run is the same every time and takes a few seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MAX_SIZE = 32  # spatial sizes stay small: the property is about arithmetic, not compute


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is many times faster than two on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@dataclass
class Layer:
    """One layer of the stack: a module, or a functional call with its own arguments."""

    kind: str
    module: nn.Module | None = None
    fn: Callable[..., torch.Tensor] | None = None
    weight: torch.Tensor | None = None
    kwargs: dict[str, Any] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.module is not None:
            return self.module(x)
        args = (x, self.weight) if self.weight is not None else (x,)
        return self.fn(*args, **(self.kwargs or {}))


class Stack(nn.Module):
    """Applies the layers in turn; functional layers keep their weights as buffers (not steps)."""

    def __init__(self, layers: list[Layer]) -> None:
        super().__init__()
        self.layers = layers
        self.mods = nn.ModuleList([lay.module for lay in layers if lay.module is not None])
        for i, lay in enumerate(layers):
            if lay.weight is not None:
                self.register_buffer(f"w{i}", lay.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, lay in enumerate(self.layers):
            if lay.weight is not None:
                lay.weight = getattr(self, f"w{i}")  # the registered buffer (what a meta walk would swap)
            x = lay(x)
        return x


def _tuple(v: Any, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


@st.composite
def conv_params(draw, sizes: list[int], transposed: bool):
    n = len(sizes)
    k, s, p, d = [], [], [], []
    for size in sizes:
        di = draw(st.integers(1, 3))
        pi = draw(st.integers(0, 2))
        if transposed:
            ki = draw(st.integers(1, 4))
            si = draw(st.integers(1, 3))
            # out = (in-1)*s - 2p + d*(k-1) + output_padding + 1 must be >= 1
            pi = min(pi, ((size - 1) * si + di * (ki - 1)) // 2)
        else:
            kmax = min(5, (size + 2 * pi - 1) // di + 1)
            ki = draw(st.integers(1, max(1, kmax)))
            si = draw(st.integers(1, 3))
        k.append(ki), s.append(si), p.append(pi), d.append(di)
    out = {"kernel_size": tuple(k), "stride": tuple(s), "padding": tuple(p), "dilation": tuple(d)}
    if transposed:
        out["output_padding"] = tuple(draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    elif draw(st.booleans()) and all(x == 1 for x in s):
        out["padding"] = draw(st.sampled_from(["same", "valid"]))
        if out["padding"] == "valid" and any(size < di * (ki - 1) + 1 for size, ki, di in zip(sizes, k, d)):
            out["padding"] = "same"
    if n == 1 or draw(st.booleans()):  # scalars as well as tuples
        out = {key: (v[0] if isinstance(v, tuple) and len(set(v)) == 1 else v) for key, v in out.items()}
    return out


@st.composite
def pool_params(draw, sizes: list[int], kind: str):
    k, s, p, d = [], [], [], []
    for size in sizes:
        di = draw(st.integers(1, 2)) if kind == "max" else 1
        ki = draw(st.integers(1, 4))
        pi = draw(st.integers(0, ki // 2)) if kind != "lp" else 0  # PyTorch: padding <= kernel // 2
        while size + 2 * pi < di * (ki - 1) + 1 and ki > 1:  # the window must fit the padded input
            ki -= 1
            pi = min(pi, ki // 2)
        if kind != "max" and len(sizes) == 3:  # avg_pool3d (and LPPool3d) also want input >= kernel
            ki = min(ki, size)
            pi = min(pi, ki // 2)
        k.append(ki), s.append(draw(st.integers(1, 3))), p.append(pi), d.append(di)
    out: dict[str, Any] = {"kernel_size": tuple(k), "ceil_mode": draw(st.booleans())}
    if draw(st.booleans()):
        out["stride"] = tuple(s)
    if kind != "lp":
        out["padding"] = tuple(p)
    if kind == "max":
        out["dilation"] = tuple(d)
    if kind == "avg":
        out["count_include_pad"] = draw(st.booleans())
    if len(sizes) == 1 or (kind != "lp" and draw(st.booleans())):  # LPPool1d wants ints; others either
        out = {key: (v[0] if isinstance(v, tuple) and len(set(v)) == 1 else v) for key, v in out.items()}
    return out


INTERP_MODES = {1: ["nearest", "linear", "nearest-exact"], 2: ["nearest", "bilinear", "bicubic", "nearest-exact"],
                3: ["nearest", "trilinear"]}  # fmt: skip


@st.composite
def upsample_params(draw, sizes: list[int]):
    n = len(sizes)
    mode = draw(st.sampled_from(INTERP_MODES[n]))
    out: dict[str, Any] = {"mode": mode}
    if draw(st.booleans()):
        out["size"] = tuple(draw(st.integers(1, 12)) for _ in sizes)
        if n == 1 or draw(st.booleans()):
            out["size"] = out["size"][0] if len(set(out["size"])) == 1 else out["size"]
    else:
        factor = draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 2.5]))
        if any(size * factor < 1 for size in sizes) or any(size * factor > MAX_SIZE for size in sizes):
            factor = 1.0
        out["scale_factor"] = factor
    if mode in ("linear", "bilinear", "bicubic", "trilinear"):
        out["align_corners"] = draw(st.booleans())
    return out


CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONVT = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
MAXP = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVGP = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
LPP = {1: nn.LPPool1d, 2: nn.LPPool2d, 3: nn.LPPool3d}
ADAPT = {1: (nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d), 2: (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d),
         3: (nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)}  # fmt: skip
FCONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
FCONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
FMAXP = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
FAVGP = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


@st.composite
def layer(draw, n: int, channels: int, sizes: list[int], batched: bool) -> Layer:
    kinds = ["conv", "conv_t", "max", "avg", "lp", "adaptive", "upsample", "f_conv", "f_conv_t", "f_max", "f_avg",
             "f_interp"]  # fmt: skip
    if not batched:
        kinds = [k for k in kinds if k not in ("upsample", "f_interp")]  # they need (N, C, ...)
    if max(sizes) > MAX_SIZE // 2:
        kinds = [k for k in kinds if k not in ("conv_t", "f_conv_t", "upsample", "f_interp")]
    kind = draw(st.sampled_from(kinds))
    c_out = draw(st.integers(1, 4))
    if kind in ("conv", "f_conv"):
        kw = draw(conv_params(sizes, transposed=False))
        if kind == "conv":
            mode = draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]))
            pads = _tuple(kw["padding"], n) if not isinstance(kw["padding"], str) else (0,) * n
            if mode != "zeros" and any(p >= size for p, size in zip(pads, sizes)):
                mode = "zeros"  # non-zero padding modes need padding < size
            return Layer(kind, module=CONV[n](channels, c_out, padding_mode=mode, **kw))
        weight = torch.randn(c_out, channels, *_tuple(kw.pop("kernel_size"), n))
        return Layer(kind, fn=FCONV[n], weight=weight, kwargs=kw)
    if kind in ("conv_t", "f_conv_t"):
        kw = draw(conv_params(sizes, transposed=True))
        if kind == "conv_t":
            return Layer(kind, module=CONVT[n](channels, c_out, **kw))
        weight = torch.randn(channels, c_out, *_tuple(kw.pop("kernel_size"), n))
        return Layer(kind, fn=FCONVT[n], weight=weight, kwargs=kw)
    if kind in ("max", "f_max"):
        kw = draw(pool_params(sizes, "max"))
        return Layer(kind, module=MAXP[n](**kw)) if kind == "max" else Layer(kind, fn=FMAXP[n], kwargs=kw)
    if kind in ("avg", "f_avg"):
        kw = draw(pool_params(sizes, "avg"))
        return Layer(kind, module=AVGP[n](**kw)) if kind == "avg" else Layer(kind, fn=FAVGP[n], kwargs=kw)
    if kind == "lp":
        kw = draw(pool_params(sizes, "lp"))
        return Layer(kind, module=LPP[n](draw(st.sampled_from([1, 2])), **kw))
    if kind == "adaptive":
        out = tuple(draw(st.one_of(st.none(), st.integers(1, 6))) for _ in range(n))
        cls = ADAPT[n][draw(st.integers(0, 1))]
        return Layer(kind, module=cls(out if n > 1 else (out[0] or 3)))
    kw = draw(upsample_params(sizes))
    if kind == "upsample":
        return Layer(kind, module=nn.Upsample(**kw))
    return Layer(kind, fn=F.interpolate, kwargs=kw)


def _last_numbers(formula: str) -> list[int]:
    """The value each line of a formula arrives at: the last `= N` of the line."""
    return [int(re.findall(r"=\s*(-?\d+)", line)[-1]) for line in formula.splitlines()]


@dataclass
class Case:
    n: int
    x: torch.Tensor
    layers: list[Layer]
    shapes: list[tuple[int, ...]]

    def __repr__(self) -> str:
        desc = []
        for lay in self.layers:
            if lay.module is not None:
                desc.append(repr(lay.module))
            else:
                w = f"weight{tuple(lay.weight.shape)}, " if lay.weight is not None else ""
                desc.append(f"F.{lay.fn.__name__}({w}{lay.kwargs})")
        return f"input {tuple(self.x.shape)} -> " + " -> ".join(desc)


@st.composite
def cases(draw) -> Case:
    n = draw(st.integers(1, 3))
    batched = draw(st.booleans()) or n == 3
    lo, hi = {1: (4, 30), 2: (4, 16), 3: (3, 8)}[n]
    sizes = [draw(st.integers(lo, hi)) for _ in range(n)]
    channels = draw(st.integers(1, 3))
    x0 = torch.randn(*((2,) if batched else ()), channels, *sizes)
    x, layers, shapes = x0, [], []
    with torch.no_grad():
        for _ in range(draw(st.integers(1, 4))):
            lay = draw(layer(n, channels, sizes, batched))
            y = lay(x)  # PyTorch is the oracle; a configuration it rejects is a bug in these strategies
            layers.append(lay)
            shapes.append(tuple(y.shape))
            x, channels, sizes = y, y.shape[-n - 1], list(y.shape[-n:])
    return Case(n, x0, layers, shapes)


@settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_trace_arithmetic_equals_pytorch(case: Case) -> None:
    model = Stack(case.layers)
    t = nbdebug.trace(model, case.x, previews=False)
    assert t.ok, f"{case}: {t.error}"
    steps = [s for s in t.steps if s.depth == 1]
    assert len(steps) == len(case.layers), (case, [s.name for s in steps])
    for step, shape in zip(steps, case.shapes):
        assert step.output_shapes == [shape], (case, step.name, step.output_shapes, shape)
        assert step.formula, (case, step.name, step.type, "no formula written out")
        spatial = list(shape[-case.n :])
        assert _last_numbers(step.formula) == spatial, (case, step.name, step.formula, spatial)
    # the meta walk writes out the same arithmetic
    meta = nbdebug.trace(model, case.x, device="meta")
    assert meta.ok, f"{case}: {meta.error}"
    assert [s.formula for s in meta.steps] == [s.formula for s in t.steps], case
    assert [s.output_shapes for s in meta.steps] == [s.output_shapes for s in t.steps], case
