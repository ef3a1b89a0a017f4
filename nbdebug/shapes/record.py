"""The recording behind `trace`: forward pre/post hooks on every module and a `TorchFunctionMode` that sees
the functional ops written in user code, switched off inside built-in layers (the layer is the step)."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn
from torch._C import DisableTorchFunction as _NoTorchFunction
from torch.overrides import TorchFunctionMode, _get_current_function_mode, _pop_mode, _push_mode

from . import arithmetic
from .result import Shape, Step, _fmt_shape

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


def _leaves(obj: Any, depth: int = 0) -> list[torch.Tensor]:
    """Tensors in a (nested) structure: tuple/list/namedtuple, dict, dataclass."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if depth > 6:
        return []
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _leaves(o, depth + 1)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _leaves(o, depth + 1)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [t for f in dataclasses.fields(obj) for t in _leaves(getattr(obj, f.name, None), depth + 1)]
    return []


def _struct(obj: Any, depth: int = 0) -> str:
    """Readable shape structure: `(8, 5, 20), ((1, 8, 20), (1, 8, 20))`, `{logits: (8, 10)}`."""
    if isinstance(obj, torch.Tensor):
        return _fmt_shape(obj.shape)
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
    return type(obj).__name__


def _args_struct(args: tuple, kwargs: dict) -> str:
    parts = [_struct(a) for a in args if _leaves(a)]
    parts += [f"{k}={_struct(v)}" for k, v in kwargs.items() if _leaves(v)]
    return ", ".join(parts)


def _shapes(tensors: list[torch.Tensor]) -> list[Shape]:
    return [tuple(t.shape) for t in tensors]


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


# ------------------------------------------------------------------------------------------------------
# the recorder


def _is_builtin(module: nn.Module) -> bool:
    mod = type(module).__module__
    return mod.startswith("torch.nn.") or mod.startswith("torch.ao.")


class _State:
    def __init__(self, model: nn.Module, previews: bool) -> None:
        self.steps: list[Step] = []
        self.modules: list[nn.Module | None] = []  # per step, the module (None for functions)
        self.stack: list[int] = []
        self.calls: dict[int, int] = {}
        self.names = {}
        for name, m in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(m), name or type(model).__name__)
        self.root = model
        self.previews = previews
        self.param_counts: dict[int, int] = {}
        self.count_params(model)
        self.failed_function: int | None = None
        self.paused = False  # True while our own hooks run, so their tensor ops are not steps
        # The function recorder is only needed while user code runs: inside a built-in layer every call
        # would go through Python for nothing (the layer is the step). It is switched off on entering a
        # built-in module and back on when a user-defined module (or the layer's exit) needs it.
        self.mode: _Recorder | None = None
        self.mode_on = False
        self.toggled: set[int] = set()  # steps whose entry switched the recorder

    def _set_mode(self, on: bool) -> bool:
        if self.mode is None or on == self.mode_on:
            return False
        if on:
            _push_mode(self.mode)
        else:
            if _get_current_function_mode() is not self.mode:
                return False  # someone else's mode is on top: leave the stack alone
            _pop_mode()
        self.mode_on = on
        return True

    def enter_module(self, index: int, module: nn.Module) -> None:
        if self._set_mode(not _is_builtin(module)):
            self.toggled.add(index)

    def leave_module(self, index: int) -> None:
        if index in self.toggled:
            self.toggled.discard(index)
            self._set_mode(not self.mode_on)

    def start(self) -> None:
        self.mode = _Recorder(self)
        self._set_mode(True)

    def stop(self) -> None:
        """Take the recorder off the mode stack whatever state an exception left it in."""
        if self.mode_on and _get_current_function_mode() is self.mode:
            _pop_mode()
        self.mode_on = False
        self.mode = None

    def params(self, m: nn.Module) -> int:
        key = id(m)
        if key not in self.param_counts:
            self.param_counts[key] = sum(p.numel() for p in m.parameters())
        return self.param_counts[key]

    def count_params(self, model: nn.Module) -> None:
        """Parameter count of every submodule in one bottom-up pass (asking each module for its
        `parameters()` walks its subtree again: quadratic in depth, and it was most of trace's overhead)."""
        counts = self.param_counts

        def visit(m: nn.Module) -> int:
            key = id(m)
            if key not in counts:
                own = sum(p.numel() for p in m._parameters.values() if p is not None)
                counts[key] = own + sum(visit(c) for c in m._modules.values() if c is not None)
            return counts[key]

        visit(model)
        counts[id(model)] = sum(p.numel() for p in model.parameters())  # tied weights counted once

    def open_step(self, step: Step, module: nn.Module | None) -> int:
        self.steps.append(step)
        self.modules.append(module)
        return step.index

    def parent(self) -> tuple[int | None, int]:
        if not self.stack:
            return None, 0
        top = self.stack[-1]
        return top, self.steps[top].depth + 1


def _pre_hook(state: _State):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if state.mode_on:
            with _NoTorchFunction():  # our own metadata reads are not steps, and cheaper without the mode
                index = _pre(state, module, args, kwargs)
        else:
            index = _pre(state, module, args, kwargs)
        state.enter_module(index, module)

    return hook


def _pre(state: _State, module: nn.Module, args: tuple, kwargs: dict) -> int:
    parent, depth = state.parent()
    if parent is not None:
        state.steps[parent].is_container = True
    key = id(module)
    state.calls[key] = state.calls.get(key, 0) + 1
    name = state.names.get(key, type(module).__name__)
    if state.calls[key] > 1:
        name = f"{name} (call {state.calls[key]})"
    if len(args) == 1 and not kwargs and type(args[0]) is torch.Tensor:  # the common case, kept cheap
        tensors = [args[0]]
        shapes = [tuple(args[0].shape)]
        input_repr = _fmt_shape(shapes[0])
    else:
        tensors = _leaves(args) + _leaves(kwargs)
        shapes = _shapes(tensors)
        input_repr = _args_struct(args, kwargs)
    formula = None
    try:
        f = arithmetic.module_formula(module, shapes[0] if shapes else None)
        formula = f[1] if f else None
    except Exception:  # a formula is a nicety; the real shapes come from running the layer
        formula = None
    step = Step(
        index=len(state.steps),
        name=name,
        kind="module",
        type=type(module).__name__,
        input_shapes=shapes,
        output_shapes=None,
        dtype=None,
        params=state.params(module),
        formula=formula,
        depth=depth,
        parent=parent,
        call=state.calls[key],
        status="incomplete",
        input_repr=input_repr,
    )
    if parent is None and state.previews and tensors:
        state.paused = True
        try:
            step.preview, step.preview_of = _preview(tensors[0]), "input"
        finally:
            state.paused = False
    state.stack.append(state.open_step(step, module))
    return step.index


def _post_hook(state: _State):
    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        if state.mode_on:
            with _NoTorchFunction():
                index = _post(state, module, output)
        else:
            index = _post(state, module, output)
        if index is not None:
            state.leave_module(index)

    return hook


def _post(state: _State, module: nn.Module, output: Any) -> int | None:
    # pop to the most recent open step of this module (robust to a child that raised and was caught)
    while state.stack:
        idx = state.stack.pop()
        if state.modules[idx] is module:
            break
    else:
        return None
    step = state.steps[idx]
    if type(output) is torch.Tensor:
        tensors = [output]
        step.output_shapes = [tuple(output.shape)]
        step.output_repr = _fmt_shape(step.output_shapes[0])
    else:
        tensors = _leaves(output)
        step.output_shapes = _shapes(tensors)
        step.output_repr = _struct(output)
    step.dtype = str(tensors[0].dtype).removeprefix("torch.") if tensors else None
    step.status = "ok"
    if state.previews and not step.is_container:
        state.paused = True
        try:
            step.preview = _preview(output)
        finally:
            state.paused = False
    return idx


class _Recorder(TorchFunctionMode):
    """Sees every torch function call; records the ones written in user code between modules."""

    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        state = self.state
        name = getattr(func, "__name__", "")
        record = (
            state.stack
            and not state.paused
            and name not in _NOISE
            and not _is_builtin(state.modules[state.stack[-1]])  # type: ignore[arg-type]
        )
        if not record:
            return func(*args, **kwargs)
        in_tensors = _leaves(args) + _leaves(kwargs)
        if not in_tensors:
            return func(*args, **kwargs)
        try:
            out = func(*args, **kwargs)
        except Exception:
            idx = self._add(func, args, kwargs, in_tensors, None)
            state.steps[idx].status = "error"
            state.failed_function = idx
            raise
        out_tensors = _leaves(out)
        if out_tensors:
            self._add(func, args, kwargs, in_tensors, out)
        return out

    def _add(self, func, args, kwargs, in_tensors, out) -> int:
        state = self.state
        parent, depth = state.parent()
        if parent is not None:
            state.steps[parent].is_container = True
        short, label = _fn_display(func)
        parent_name = state.steps[parent].name if parent is not None and parent != 0 else ""
        formula = None
        try:
            f = arithmetic.function_formula(short, args, kwargs)
            formula = f[1] if f else None
        except Exception:
            formula = None
        out_tensors = _leaves(out) if out is not None else []
        step = Step(
            index=len(state.steps),
            name=f"{parent_name}.{short}" if parent_name else short,
            kind="function",
            type=label,
            input_shapes=_shapes(in_tensors),
            output_shapes=_shapes(out_tensors) if out is not None else None,
            dtype=str(out_tensors[0].dtype).removeprefix("torch.") if out_tensors else None,
            params=0,
            formula=formula,
            depth=depth,
            parent=parent,
            input_repr=_args_struct(tuple(args), kwargs),
            output_repr=_struct(out) if out is not None else "",
        )
        if state.previews and out is not None:
            state.paused = True
            try:
                step.preview = _preview(out)
            finally:
                state.paused = False
        return state.open_step(step, None)
