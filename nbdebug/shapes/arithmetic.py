"""Output-size arithmetic written out with a layer's own numbers.

Each function returns `(values, text)`: the output sizes it predicts and the formula as the user would
write it by hand, e.g. ``H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14``. The formulas are the
ones in the PyTorch docs of each layer; tests check every value against what the layer really outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

_DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def _tuple(v: Any, n: int) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) == 1 and n > 1:
            return tuple(v) * n
        return tuple(v)
    return (v,) * n


def dim_names(n: int) -> tuple[str, ...]:
    return _DIM_NAMES.get(n, tuple(f"S{i}" for i in range(n)))


def conv(
    sizes: Sequence[int], kernel: Any, stride: Any = 1, padding: Any = 0, dilation: Any = 1
) -> tuple[list[int], str]:
    """Conv1d/2d/3d: ``out = floor((in + 2*p - d*(k-1) - 1) / s) + 1``; padding may be 'same'/'valid'."""
    n = len(sizes)
    k, s, d = _tuple(kernel, n), _tuple(stride, n), _tuple(dilation, n)
    names = dim_names(n)
    if padding == "same":
        return list(sizes), "\n".join(
            f"{a}_out = {a}_in = {x}   (padding='same')" for a, x in zip(names, sizes)
        )
    p = (0,) * n if padding == "valid" else _tuple(padding, n)
    vals, lines = [], []
    for a, x, ki, si, pi, di in zip(names, sizes, k, s, p, d):
        out = (x + 2 * pi - di * (ki - 1) - 1) // si + 1
        vals.append(out)
        lines.append(f"{a}_out = floor(({x} + 2*{pi} - {di}*({ki}-1) - 1) / {si}) + 1 = {out}")
    return vals, "\n".join(lines)


def conv_transpose(
    sizes: Sequence[int],
    kernel: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> tuple[list[int], str]:
    """ConvTranspose: ``out = (in - 1)*s - 2*p + d*(k-1) + output_padding + 1``."""
    n = len(sizes)
    k, s, p = _tuple(kernel, n), _tuple(stride, n), _tuple(padding, n)
    op, d = _tuple(output_padding, n), _tuple(dilation, n)
    vals, lines = [], []
    for a, x, ki, si, pi, oi, di in zip(dim_names(n), sizes, k, s, p, op, d):
        out = (x - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
        vals.append(out)
        lines.append(f"{a}_out = ({x} - 1)*{si} - 2*{pi} + {di}*({ki}-1) + {oi} + 1 = {out}")
    return vals, "\n".join(lines)


def _pool_ceil(x: int, p: int, s: int, span: int) -> tuple[int, bool]:
    out = math.ceil((x + 2 * p - span) / s) + 1
    # PyTorch: the last window must start inside the input or its left padding.
    if (out - 1) * s >= x + p:
        return out - 1, True
    return out, False


def max_pool(
    sizes: Sequence[int],
    kernel: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[list[int], str]:
    """MaxPool: as conv, with ceil instead of floor when ceil_mode=True."""
    n = len(sizes)
    k = _tuple(kernel, n)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, n)
    p, d = _tuple(padding, n), _tuple(dilation, n)
    vals, lines = [], []
    for a, x, ki, si, pi, di in zip(dim_names(n), sizes, k, s, p, d):
        span = di * (ki - 1) + 1
        if ceil_mode:
            out, dropped = _pool_ceil(x, pi, si, span)
            note = "  (last window would start in the padding: dropped)" if dropped else ""
            lines.append(f"{a}_out = ceil(({x} + 2*{pi} - {di}*({ki}-1) - 1) / {si}) + 1 = {out}{note}")
        else:
            out = (x + 2 * pi - span) // si + 1
            lines.append(f"{a}_out = floor(({x} + 2*{pi} - {di}*({ki}-1) - 1) / {si}) + 1 = {out}")
        vals.append(out)
    return vals, "\n".join(lines)


def avg_pool(
    sizes: Sequence[int], kernel: Any, stride: Any = None, padding: Any = 0, ceil_mode: bool = False
) -> tuple[list[int], str]:
    """AvgPool / LPPool: ``out = floor((in + 2*p - k) / s) + 1``."""
    n = len(sizes)
    k = _tuple(kernel, n)
    s = k if stride is None or stride == [] or stride == () else _tuple(stride, n)
    p = _tuple(padding, n)
    vals, lines = [], []
    for a, x, ki, si, pi in zip(dim_names(n), sizes, k, s, p):
        if ceil_mode:
            out, _ = _pool_ceil(x, pi, si, ki)
            lines.append(f"{a}_out = ceil(({x} + 2*{pi} - {ki}) / {si}) + 1 = {out}")
        else:
            out = (x + 2 * pi - ki) // si + 1
            lines.append(f"{a}_out = floor(({x} + 2*{pi} - {ki}) / {si}) + 1 = {out}")
        vals.append(out)
    return vals, "\n".join(lines)


def max_unpool(
    sizes: Sequence[int], kernel: Any, stride: Any = None, padding: Any = 0
) -> tuple[list[int], str]:
    n = len(sizes)
    k = _tuple(kernel, n)
    s = k if stride is None else _tuple(stride, n)
    p = _tuple(padding, n)
    vals, lines = [], []
    for a, x, ki, si, pi in zip(dim_names(n), sizes, k, s, p):
        out = (x - 1) * si - 2 * pi + ki
        vals.append(out)
        lines.append(f"{a}_out = ({x} - 1)*{si} - 2*{pi} + {ki} = {out}")
    return vals, "\n".join(lines)


def adaptive(sizes: Sequence[int], output_size: Any) -> tuple[list[int], str]:
    n = len(sizes)
    o = _tuple(output_size, n)
    vals = [x if oi is None else oi for x, oi in zip(sizes, o)]
    lines = [
        f"{a}_out = output_size = {v}" if oi is not None else f"{a}_out = {a}_in = {v}   (output_size None)"
        for a, v, oi in zip(dim_names(n), vals, o)
    ]
    return vals, "\n".join(lines)


def interpolate(sizes: Sequence[int], size: Any = None, scale_factor: Any = None) -> tuple[list[int], str]:
    """Upsample / F.interpolate: ``out = size`` or ``out = floor(in * scale_factor)``."""
    n = len(sizes)
    names = dim_names(n)
    if size is not None:
        vals = list(_tuple(size, n))
        return vals, "\n".join(f"{a}_out = size = {v}" for a, v in zip(names, vals))
    sf = _tuple(scale_factor, n)
    vals = [int(math.floor(x * float(f))) for x, f in zip(sizes, sf)]
    return vals, "\n".join(f"{a}_out = floor({x} * {f}) = {v}" for a, x, f, v in zip(names, sizes, sf, vals))


def flatten(shape: Sequence[int], start_dim: int = 1, end_dim: int = -1) -> tuple[list[int], str]:
    """Flatten: the product of the flattened dimensions, the number a following Linear must expect."""
    nd = len(shape)
    if nd == 0:
        return [1], "flatten of a 0-d tensor = (1,)"
    s, e = start_dim % nd, end_dim % nd
    dims = list(shape[s : e + 1])
    prod = math.prod(dims)
    out = list(shape[:s]) + [prod] + list(shape[e + 1 :])
    return out, f"{'*'.join(str(x) for x in dims)} = {prod}   ({tuple(shape)} -> {tuple(out)})"


def pixel_shuffle(shape: Sequence[int], r: int) -> tuple[list[int], str]:
    c, h, w = shape[-3:]
    out = [c // (r * r), h * r, w * r]
    return out, f"C_out = {c} / {r}^2 = {out[0]}\nH_out = {h} * {r} = {out[1]}\nW_out = {w} * {r} = {out[2]}"


# Layers that have an output-size formula; anything else is rejected with one isinstance check, since
# trace() asks for every module call.
_FORMULA_TYPES = (
    nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._LPPoolNd, nn.modules.pooling._MaxUnpoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.Upsample, nn.Flatten, nn.PixelShuffle,
)  # fmt: skip


def module_formula(module: nn.Module, input_shape: Sequence[int] | None) -> tuple[list[int], str] | None:
    """The formula for a module given its first input's shape, or None when the layer has none."""
    if input_shape is None or not isinstance(module, _FORMULA_TYPES):
        return None
    shape = list(input_shape)

    def spatial(n: int) -> list[int] | None:
        # batched (N, C, *S) or unbatched (C, *S)
        return shape[-n:] if len(shape) in (n + 1, n + 2) else None

    m = module
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        sp = spatial(len(m.kernel_size))
        if sp is None:
            return None
        return conv_transpose(sp, m.kernel_size, m.stride, m.padding, m.output_padding, m.dilation)
    if isinstance(m, nn.modules.conv._ConvNd):
        sp = spatial(len(m.kernel_size))
        if sp is None:
            return None
        pad = m.padding if isinstance(m.padding, str) else m.padding
        return conv(sp, m.kernel_size, m.stride, pad, m.dilation)
    for cls, n in ((nn.MaxPool1d, 1), (nn.MaxPool2d, 2), (nn.MaxPool3d, 3)):
        if isinstance(m, cls):
            sp = spatial(n)
            return (
                None
                if sp is None
                else max_pool(sp, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
            )
    for cls, n in ((nn.AvgPool1d, 1), (nn.AvgPool2d, 2), (nn.AvgPool3d, 3)):
        if isinstance(m, cls):
            sp = spatial(n)
            return None if sp is None else avg_pool(sp, m.kernel_size, m.stride, m.padding, m.ceil_mode)
    for cls, n in ((nn.LPPool1d, 1), (nn.LPPool2d, 2), (nn.LPPool3d, 3)):
        if isinstance(m, cls):
            sp = spatial(n)
            return None if sp is None else avg_pool(sp, m.kernel_size, m.stride, 0, m.ceil_mode)
    for cls, n in ((nn.MaxUnpool1d, 1), (nn.MaxUnpool2d, 2), (nn.MaxUnpool3d, 3)):
        if isinstance(m, cls):
            sp = spatial(n)
            return None if sp is None else max_unpool(sp, m.kernel_size, m.stride, m.padding)
    adaptive_types = (
        (nn.AdaptiveAvgPool1d, 1),
        (nn.AdaptiveAvgPool2d, 2),
        (nn.AdaptiveAvgPool3d, 3),
        (nn.AdaptiveMaxPool1d, 1),
        (nn.AdaptiveMaxPool2d, 2),
        (nn.AdaptiveMaxPool3d, 3),
    )
    for cls, n in adaptive_types:
        if isinstance(m, cls):
            sp = spatial(n)
            return None if sp is None else adaptive(sp, m.output_size)
    if isinstance(m, nn.Upsample):
        n = len(shape) - 2
        if n < 1:
            return None
        return interpolate(shape[2:], m.size, m.scale_factor)
    if isinstance(m, nn.Flatten):
        return flatten(shape, m.start_dim, m.end_dim)
    if isinstance(m, nn.PixelShuffle) and len(shape) >= 3:
        return pixel_shuffle(shape, m.upscale_factor)
    return None


# Positional parameter names of the functional forms, to read their arguments.
_FUNCTIONAL_ARGS = {
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": (
        "input",
        "weight",
        "bias",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "avg_pool": (
        "input",
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "interpolate": ("input", "size", "scale_factor", "mode", "align_corners"),
    "flatten": ("input", "start_dim", "end_dim"),
    "adaptive": ("input", "output_size"),
}


def _family(name: str) -> tuple[str, int] | None:
    for prefix in (
        "conv_transpose",
        "conv",
        "max_pool",
        "avg_pool",
        "adaptive_avg_pool",
        "adaptive_max_pool",
    ):
        if name.startswith(prefix) and name[len(prefix) :] in ("1d", "2d", "3d"):
            fam = "adaptive" if prefix.startswith("adaptive") else prefix
            return fam, int(name[len(prefix)])
    if name in ("interpolate", "upsample"):
        return "interpolate", 0
    if name == "flatten":
        return "flatten", 0
    return None


def function_formula(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[list[int], str] | None:
    """The formula for a functional call (F.conv2d, F.max_pool2d, F.interpolate, torch.flatten, ...)."""
    fam = _family(name)
    if fam is None or not args:
        return None
    family, n = fam
    bound = dict(zip(_FUNCTIONAL_ARGS[family], args))
    bound.update(kwargs)
    x = bound.get("input")
    shape = list(getattr(x, "shape", ()))
    if family == "flatten":
        return flatten(shape, bound.get("start_dim", 0), bound.get("end_dim", -1))
    if family == "interpolate":
        n = len(shape) - 2
        if n < 1:
            return None
        return interpolate(shape[2:], bound.get("size"), bound.get("scale_factor"))
    if len(shape) not in (n + 1, n + 2):
        return None
    sp = shape[-n:]
    if family == "conv":
        w = bound.get("weight")
        if w is None:
            return None
        return conv(
            sp, tuple(w.shape[2:]), bound.get("stride", 1), bound.get("padding", 0), bound.get("dilation", 1)
        )
    if family == "conv_transpose":
        w = bound.get("weight")
        if w is None:
            return None
        return conv_transpose(
            sp,
            tuple(w.shape[2:]),
            bound.get("stride", 1),
            bound.get("padding", 0),
            bound.get("output_padding", 0),
            bound.get("dilation", 1),
        )
    if family == "max_pool":
        return max_pool(
            sp,
            bound["kernel_size"],
            bound.get("stride"),
            bound.get("padding", 0),
            bound.get("dilation", 1),
            bool(bound.get("ceil_mode", False)),
        )
    if family == "avg_pool":
        return avg_pool(
            sp,
            bound["kernel_size"],
            bound.get("stride"),
            bound.get("padding", 0),
            bool(bound.get("ceil_mode", False)),
        )
    if family == "adaptive":
        return adaptive(sp, bound.get("output_size"))
    return None
