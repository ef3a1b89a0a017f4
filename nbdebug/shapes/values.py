"""What the recorder reads from the values a forward pass passes around: the tensors in any structure,
their shapes (a nested tensor's too), a readable structure, the display name of a function, previews."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .result import Shape, _fmt_shape

# Calls that never change a shape or only read metadata: not worth a step of their own.
_NOISE = {
    "__get__", "__set__", "__len__", "__bool__", "__format__", "__repr__", "__str__", "__hash__",
    "__index__", "__int__", "__float__", "__contains__", "__iter__", "__reversed__", "__array__",
    "size", "dim", "numel", "item", "tolist", "is_floating_point", "is_complex", "element_size",
    "stride", "storage_offset", "data_ptr", "is_contiguous", "get_device", "type_as", "to", "cpu",
    "cuda", "type", "float", "double", "half", "bfloat16", "long", "int", "bool", "detach", "detach_",
    "clone", "contiguous", "requires_grad_", "retain_grad", "numpy", "__setitem__", "__deepcopy__",
    "__reduce_ex__", "_has_compatible_shallow_copy_type", "is_nonzero", "equal", "allclose",
    "isfinite", "isnan", "isinf", "any", "all", "_is_view", "__dlpack__", "dim_order", "new_empty",
    "new_zeros", "new_ones", "new_full", "new_tensor", "zeros_like", "ones_like", "empty_like",
    "full_like", "rand_like", "randn_like", "normal_", "uniform_", "fill_", "zero_", "copy_",
}  # fmt: skip

_OPERATORS = {
    "__add__": "+", "__radd__": "+", "__iadd__": "+=", "__sub__": "-", "__rsub__": "-", "__isub__": "-=",
    "__mul__": "*", "__rmul__": "*", "__imul__": "*=", "__truediv__": "/", "__rtruediv__": "/",
    "__itruediv__": "/=", "__matmul__": "@", "__rmatmul__": "@", "__getitem__": "[]", "__pow__": "**",
    "__neg__": "-x", "__floordiv__": "//", "__mod__": "%", "__and__": "&", "__or__": "|",
}  # fmt: skip

_PREVIEW_CHANNELS = 8
_PREVIEW_PIXELS = 64


_MAX_DEPTH = 64  # containers nested deeper than this (or in a cycle) are not walked
# exact types (an int subclass may carry tensors in its attributes)
_ATOMS = frozenset({str, bytes, int, float, bool, complex, torch.dtype, torch.device, type, type(None)})


def _public(obj: Any) -> dict[str, Any] | None:
    """The public instance attributes of a plain object (a result object, a torch.distributions object),
    read from its `__dict__` (no property is evaluated); None for modules, atoms and objects without one."""
    attrs = getattr(obj, "__dict__", None)
    if type(attrs) is not dict or isinstance(obj, (nn.Module, type)) or callable(obj):
        return None
    return {k: v for k, v in attrs.items() if not k.startswith("_")}


def _leaves(obj: Any) -> list[torch.Tensor]:
    """Tensors in a structure at any depth: tuple/list/namedtuple, dict, dataclass, and the public
    attributes of plain objects (a detection result, a distribution); each container visited once."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    out: list[torch.Tensor] = []
    _walk(obj, out, set(), 0)
    return out


def _walk(obj: Any, out: list[torch.Tensor], seen: set[int], depth: int) -> None:
    if type(obj) in _ATOMS or depth > _MAX_DEPTH or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        items: Any = obj
    elif isinstance(obj, dict):
        items = obj.values()
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = [getattr(obj, f.name, None) for f in dataclasses.fields(obj)]
    else:
        attrs = _public(obj)
        if not attrs:
            return
        items = attrs.values()
    for o in items:
        if isinstance(o, torch.Tensor):
            out.append(o)
        elif type(o) not in _ATOMS:
            _walk(o, out, seen, depth + 1)


def _struct(obj: Any, depth: int = 0) -> str:
    """Readable shape structure: `(8, 5, 20), ((1, 8, 20), (1, 8, 20))`, `{logits: (8, 10)}`,
    `Normal(loc=(2, 3), scale=(2, 3))`."""
    if isinstance(obj, torch.Tensor):
        return _fmt_shape(_shape(obj))
    if depth > 4:
        return "..."
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        inner = ", ".join(f"{k}={_struct(getattr(obj, k), depth + 1)}" for k in obj._fields)
        return f"{type(obj).__name__}({inner})"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(_struct(o, depth + 1) for o in obj[:6]) + (", ..." if len(obj) > 6 else "")
        return f"[{inner}]" if isinstance(obj, list) else f"({inner})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k}: {_struct(v, depth + 1)}" for k, v in list(obj.items())[:6]) + "}"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        inner = ", ".join(
            f"{f.name}={_struct(getattr(obj, f.name, None), depth + 1)}" for f in dataclasses.fields(obj)
        )
        return f"{type(obj).__name__}({inner})"
    if obj is None:
        return "None"
    if isinstance(obj, (int, float, bool, str)):
        return repr(obj) if not isinstance(obj, str) or len(obj) < 20 else "str"
    attrs = _public(obj)
    if attrs:
        shown = [(k, v) for k, v in attrs.items() if _leaves(v)][:6]
        if shown:
            return (
                f"{type(obj).__name__}(" + ", ".join(f"{k}={_struct(v, depth + 1)}" for k, v in shown) + ")"
            )
    return type(obj).__name__


def _args_struct(args: tuple, kwargs: dict) -> str:
    parts = [_struct(a) for a in args if _leaves(a)]
    parts += [f"{k}={_struct(v)}" for k, v in kwargs.items() if _leaves(v)]
    return ", ".join(parts)


def _shapes(tensors: list[torch.Tensor]) -> list[Shape]:
    try:
        return [tuple(t.shape) for t in tensors]
    except RuntimeError:  # a nested tensor has no single shape
        return [_shape(t) for t in tensors]


def _shape(t: torch.Tensor) -> Shape:
    """`tuple(t.shape)`; for a nested tensor (ragged: a TransformerEncoder's fast path with a padding
    mask) the sizes its components share, None where they differ (shown as `*`)."""
    try:
        return tuple(t.shape)
    except RuntimeError:
        pass
    try:
        sizes = t._nested_tensor_size()
        cols = [sizes[:, j] for j in range(sizes.shape[1])]
        return (sizes.shape[0], *(int(c[0]) if bool((c == c[0]).all()) else None for c in cols))  # type: ignore[return-value]
    except Exception:
        return ()


def _fn_display(func: Any) -> tuple[str, str]:
    """(short name, type label) of a function torch dispatched to us."""
    name = getattr(func, "__name__", None) or type(func).__name__
    qual = getattr(func, "__qualname__", name) or name
    module = getattr(func, "__module__", "") or ""
    op = _OPERATORS.get(name)
    if op is not None:
        return name.strip("_").removeprefix("r").removeprefix(
            "i"
        ) if op != "[]" else "getitem", f"operator {op}"
    if qual.startswith("Tensor.") or qual.startswith("TensorBase."):
        return name, "Tensor." + name
    if module.startswith("torch.nn.functional"):
        return name, "F." + name
    return name, "torch." + name


def _preview(out: Any) -> torch.Tensor | None:
    """First channels of an image-like output as a small float CPU tensor (C, H, W) for the panel."""
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.device.type == "meta":
        return None
    if out.shape[-1] < 2 or out.shape[-2] < 2 or not (out.is_floating_point() or out.dtype == torch.uint8):
        return None
    x = out[0, :_PREVIEW_CHANNELS].detach()
    step = -(-max(x.shape[-2:]) // _PREVIEW_PIXELS)  # ceil: strided view, a copy of <= 64x64 pixels
    if step > 1:
        x = x[..., ::step, ::step]
    # the copy matters: later in-place ops (ReLU(inplace=True)) would change a view of the activation
    return x.to(device="cpu", dtype=torch.float32, copy=True)
