"""Layer-by-layer shape trace of one forward pass: modules AND the functional ops between them.

`trace(model, *inputs)` runs one forward pass with forward pre/post hooks on every submodule and a
`TorchFunctionMode` that sees the functional operations written in the user's own `forward`
(`torch.flatten`, `view`, `cat`, the `+` of a residual, `F.interpolate`, `permute`): module-only summaries
are blind to those, and that is where shape bugs live. Operations inside built-in `torch.nn` layers
(the `F.conv2d` inside `nn.Conv2d`) are not separate steps: the layer is the step.

When the forward pass raises, the steps before the failure are kept and `Trace.error` names the failing
step, its input shapes, the original message and a hint in plain words. The model always comes back
unchanged (hooks, mode, requires_grad, buffers, RNG).
"""

from __future__ import annotations

import dataclasses
import html
import inspect
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch._C import DisableTorchFunction as _NoTorchFunction
from torch.overrides import TorchFunctionMode, _get_current_function_mode, _pop_mode, _push_mode

from .._core.errors import NbdebugError, describe
from .._core.hooks import HookSet, preserved
from . import arithmetic

Shape = tuple[int, ...]

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


@dataclass(slots=True)
class Step:
    """One step of the forward pass: a module call or a functional operation.

    `formula` is the output-size arithmetic written out with the layer's own numbers (conv, transposed
    conv, pooling, upsampling, flatten), else None. `parent` is the index of the enclosing module step.
    """

    index: int
    name: str
    kind: str  # "module" | "function"
    type: str
    input_shapes: list[Shape]
    output_shapes: list[Shape] | None
    dtype: str | None
    params: int
    formula: str | None = None
    depth: int = 0
    parent: int | None = None
    call: int = 1
    is_container: bool = False
    status: str = "ok"  # "ok" | "error" | "incomplete" (an enclosing module of the failing step)
    input_repr: str = ""
    output_repr: str = ""
    preview: torch.Tensor | None = field(default=None, repr=False, compare=False)
    preview_of: str = "output"  # the model's root step previews its input: what every layer starts from

    def describe(self) -> str:
        """One line: `name (type): in -> out`."""
        return f"{self.name} ({self.type}): {self.input_repr or '-'} -> {self.output_repr or '-'}"


@dataclass
class TraceError:
    """Where the forward pass failed, what it got, and what to do about it."""

    where: str
    message: str
    hint: str
    step: int | None = None
    type: str = ""
    exception_type: str = ""
    input_shapes: list[Shape] = field(default_factory=list)

    def __str__(self) -> str:
        shapes = ", ".join(_fmt_shape(s) for s in self.input_shapes) or "-"
        return (
            f"forward pass failed at {self.where} ({self.type}) with input {shapes}: "
            f"{self.exception_type}: {self.message}\nHint: {self.hint}"
        )


@dataclass
class Trace:
    """Every step of one forward pass, in execution order, and the error if it failed."""

    steps: list[Step]
    error: TraceError | None = None
    model_type: str = ""
    input_repr: str = ""
    output_repr: str = ""
    device: str = "cpu"
    seconds: float = 0.0
    total_params: int = 0

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __getitem__(self, key: int | str) -> Step:
        if isinstance(key, int):
            return self.steps[key]
        for s in self.steps:
            if s.name == key:
                return s
        raise KeyError(f"no step named {key!r}; names: {', '.join(s.name for s in self.steps[:12])}")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def failing_step(self) -> Step | None:
        if self.error is None or self.error.step is None:
            return None
        return self.steps[self.error.step]

    def raise_for_error(self) -> Trace:
        """Raise `NbdebugError` with the failing step and hint when the forward pass failed."""
        if self.error is not None:
            raise NbdebugError(str(self.error))
        return self

    def to_frame(self):
        """One row per step: index, name, kind, type, input/output shapes, dtype, params, formula, ..."""
        import pandas as pd

        rows = [
            {f.name: getattr(s, f.name) for f in dataclasses.fields(Step) if f.name != "preview"}
            for s in self.steps
        ]
        cols = [f.name for f in dataclasses.fields(Step) if f.name != "preview"]
        return pd.DataFrame(rows, columns=cols).set_index("index", drop=False).rename_axis(None)

    # -- rendering (no kernel needed) -----------------------------------------------------------------
    def summary(self) -> str:
        n_mod = sum(s.kind == "module" for s in self.steps)
        n_fn = len(self.steps) - n_mod
        head = f"{self.model_type}: {len(self.steps)} steps ({n_mod} module calls, {n_fn} functional ops)"
        head += f", {self.total_params:,} parameters, input {self.input_repr}"
        if self.error is None:
            head += f" -> output {self.output_repr}"
        return head

    def to_text(self, max_rows: int = 200) -> str:
        lines = [self.summary()]
        rows = [("#", "name", "type", "input", "output", "params")]
        for s in self.steps[:max_rows]:
            mark = {"error": "!! ", "incomplete": ".. "}.get(s.status, "")
            name = "  " * s.depth + s.name
            rows.append(
                (str(s.index), mark + name, s.type, s.input_repr, s.output_repr or "-", f"{s.params:,}")
            )
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(c[:48].ljust(w) for c, w in zip(r, widths)).rstrip())
        if len(self.steps) > max_rows:
            lines.append(f"... {len(self.steps) - max_rows} more steps (see .to_frame())")
        if self.error is not None:
            lines.append("")
            lines.append(f"ERROR {self.error}")
        return "\n".join(lines)

    def to_html(self, max_rows: int = 400, current: int | None = None) -> str:
        esc = html.escape
        out = [f'<div class="nbdebug-trace"><p><b>{esc(self.summary())}</b></p>']
        if self.error is not None:
            out.append(error_html(self.error))
        out.append(
            '<table class="nbdebug-trace-table" style="border-collapse:collapse;font-size:12px">'
            "<thead><tr><th>#</th><th>name</th><th>kind</th><th>type</th><th>input</th><th>output</th>"
            "<th>dtype</th><th>params</th><th>arithmetic</th></tr></thead><tbody>"
        )
        for s in self.steps[:max_rows]:
            style = ""
            if s.status == "error":
                style = "background:#fde2e1"
            elif s.index == current:
                style = "background:#fff3b0"
            elif s.kind == "function":
                style = "background:#eef6ff"
            pad = f"padding-left:{4 + 12 * s.depth}px"
            formula = esc(s.formula or "").replace("\n", "<br>")
            out.append(
                f'<tr data-step="{s.index}" data-status="{s.status}" style="{style}">'
                f'<td>{s.index}</td><td style="{pad}"><code>{esc(s.name)}</code></td><td>{s.kind}</td>'
                f"<td>{esc(s.type)}</td><td>{esc(s.input_repr)}</td><td>{esc(s.output_repr or '-')}</td>"
                f'<td>{esc(s.dtype or "")}</td><td style="text-align:right">{s.params:,}</td>'
                f'<td style="font-family:monospace;font-size:11px">{formula}</td></tr>'
            )
        out.append("</tbody></table>")
        if len(self.steps) > max_rows:
            out.append(f"<p>... {len(self.steps) - max_rows} more steps (see <code>.to_frame()</code>)</p>")
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def __repr__(self) -> str:
        status = "ok" if self.error is None else f"error at {self.error.where}"
        return f"<Trace {self.model_type}: {len(self.steps)} steps, {status}>"


def error_html(error: TraceError) -> str:
    esc = html.escape
    shapes = ", ".join(_fmt_shape(s) for s in error.input_shapes) or "-"
    return (
        '<div class="nbdebug-trace-error" style="border-left:4px solid #c62828;background:#fdecea;'
        'padding:6px 10px;margin:6px 0">'
        f"<b>Forward pass failed at <code>{esc(error.where)}</code> ({esc(error.type)})</b>"
        f" with input {esc(shapes)}<br><code>{esc(error.exception_type)}: {esc(error.message)}</code>"
        f"<br><b>Hint:</b> {esc(error.hint)}</div>"
    )


# ------------------------------------------------------------------------------------------------------
# structure helpers


def _fmt_shape(shape: Sequence[int] | None) -> str:
    if shape is None:
        return "-"
    text = str(tuple(shape))  # "(8, 1, 28, 28)"; called per step, so kept to one C-level str()
    return text[:-2] + ")" if text.endswith(",)") else text


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


# ------------------------------------------------------------------------------------------------------
# hints


def _previous_output(steps: list[Step], failing: Step) -> Step | None:
    """The last completed step before `failing` that is not one of its enclosing modules."""
    ancestors = set()
    p = failing.parent
    while p is not None:
        ancestors.add(p)
        p = steps[p].parent
    for s in reversed(steps[: failing.index]):
        if s.index not in ancestors and s.output_shapes:
            return s
    return None


def _shape_origin(steps: list[Step], step: Step) -> Step | None:
    """Walk back through shape-preserving steps (dropout, activations) to the step that made the shape."""
    s: Step | None = step
    while s is not None:
        if s.input_shapes and s.output_shapes and s.input_shapes[0] != s.output_shapes[0]:
            return s
        s = _previous_output(steps, s)
    return None


def _hint(step: Step, module: nn.Module | None, exc: BaseException, steps: list[Step]) -> str:
    msg = str(exc)
    shapes = step.input_shapes
    x = shapes[0] if shapes else None
    prev = _previous_output(steps, step)
    after = ""
    if prev is not None:
        after = f"; the previous step {prev.name} ({prev.type}) outputs {prev.output_repr}"
        origin = _shape_origin(steps, prev)
        if origin is prev:
            after = f"; the previous step {prev.name} ({prev.type}) turned {prev.input_repr} into {prev.output_repr}"
        elif origin is not None:
            after += f", made by {origin.name} ({origin.type}) from {origin.input_repr}"
    if "same device" in msg:
        return "the input and the layer's weights are on different devices: move the input with x.to(next(model.parameters()).device)"
    if isinstance(module, nn.Linear) and x is not None:
        got = x[-1] if x else None
        if got != module.in_features:
            fix = f"set in_features={got}" if got else "check the input"
            return (
                f"{step.name} expected last dimension {module.in_features} (in_features) but got {got}{after}. "
                f"Either {fix} in {step.name}, or change the layers before it so they produce "
                f"{module.in_features} features (e.g. the flatten or pooling before it)."
            )
    if isinstance(module, nn.modules.conv._ConvNd) and x is not None:
        n = len(module.kernel_size)
        if len(x) not in (n + 1, n + 2):
            fix = " Add the channel dimension with x.unsqueeze(1)." if len(x) == n else ""
            return (
                f"{type(module).__name__} expects a {n + 2}D input (N, C, {', '.join(arithmetic.dim_names(n))}) "
                f"or an unbatched {n + 1}D one, but got {len(x)}D {_fmt_shape(x)}{after}.{fix}"
            )
        c = x[1] if len(x) == n + 2 else x[0]
        if c != module.in_channels:
            return (
                f"{step.name} expected {module.in_channels} input channels (in_channels) but got {c} in dim "
                f"{1 if len(x) == n + 2 else 0} of {_fmt_shape(x)}{after}. Set in_channels={c}, or check the "
                "channel order (PyTorch wants N, C, H, W: use x.permute(0, 3, 1, 2) for N, H, W, C images)."
            )
        if "Kernel size can't be greater than actual input size" in msg or "output size is too small" in msg:
            return (
                f"the input {_fmt_shape(x)} is smaller than the kernel after padding: "
                f"{step.formula or ''} Use fewer downsampling steps or a larger input."
            )
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and x is not None:
        c = x[1] if len(x) > 1 else None
        if c != module.num_features:
            return (
                f"{step.name} expected {module.num_features} channels (num_features) in dim 1 but got {c} "
                f"in {_fmt_shape(x)}{after}. Set num_features={c}."
            )
        if "more than 1 value per channel" in msg:
            return (
                f"BatchNorm in train mode needs more than one value per channel, but {_fmt_shape(x)} has one. "
                "Use a batch larger than 1, call model.eval() for single-example inference, or use GroupNorm/LayerNorm."
            )
    if isinstance(module, nn.LayerNorm) and x is not None:
        want = tuple(module.normalized_shape)
        if tuple(x[-len(want) :]) != want:
            return (
                f"{step.name} normalizes over the last dims {_fmt_shape(want)} but the input ends in "
                f"{_fmt_shape(x[-len(want) :])}{after}."
            )
    if isinstance(module, nn.Embedding):
        if "Long" in msg or "Int" in msg or "scalar type" in msg:
            return (
                "nn.Embedding takes integer indices (torch.long), not floats: pass token ids, e.g. x.long()."
            )
        if "index out of range" in msg:
            return f"an index is >= num_embeddings={module.num_embeddings}: check the vocabulary size."
    if isinstance(module, (nn.RNNBase,)) and x is not None and len(x) == 3:
        if x[-1] != module.input_size:
            return (
                f"{step.name} expected input_size={module.input_size} in the last dimension but got {x[-1]} in "
                f"{_fmt_shape(x)}{after}. With batch_first={module.batch_first} the input is "
                f"{'(N, L, H_in)' if module.batch_first else '(L, N, H_in)'}."
            )
    if step.kind == "function":
        fn = step.type
        listed = ", ".join(_fmt_shape(s) for s in shapes)
        if fn.endswith(".cat") or fn.endswith(".stack") or fn.endswith("concat"):
            return (
                f"{fn} needs all tensors to have the same size except in the joined dimension; got {listed}. "
                "Crop or interpolate one of them (a U-Net skip connection often needs F.interpolate "
                "or padding when the input size is not divisible by 2**depth)."
            )
        if fn.startswith("operator") or fn.split(".")[-1] in (
            "add",
            "sub",
            "mul",
            "div",
            "matmul",
            "mm",
            "bmm",
        ):
            if "size of tensor a" in msg or "must match" in msg or "broadcast" in msg:
                return (
                    f"the operands {listed} do not broadcast (sizes must match or be 1 in each dimension, "
                    "aligned from the right). In a residual block, the shortcut needs the same shape as the "
                    "branch: add a 1x1 conv with the same stride (downsample) on the shortcut."
                )
            if "cannot be multiplied" in msg:
                return f"matrix product of {listed}: the inner dimensions must agree."
        if fn.split(".")[-1] in ("view", "reshape", "unflatten", "view_as"):
            n = 1
            for d in shapes[0] if shapes else ():
                n *= d
            return (
                f"{fn} cannot fit {n} elements of {listed} into the requested shape{after}. "
                "Compute the size from the tensor (x.flatten(1) or x.view(x.size(0), -1)) instead of "
                "hard-coding it; view() also fails on non-contiguous tensors where reshape() works."
            )
    if "mat1 and mat2 shapes cannot be multiplied" in msg:
        return f"a matrix product got incompatible shapes{after}."
    return f"{step.name} ({step.type}) raised with input {', '.join(_fmt_shape(s) for s in shapes) or '-'}{after}."


# ------------------------------------------------------------------------------------------------------
# public entry point


def _call_args(model: nn.Module, inputs: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """A single tuple/list or dict batch is unpacked when `forward` takes its items as arguments."""
    if len(inputs) != 1 or kwargs:
        return inputs, kwargs
    (batch,) = inputs
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return inputs, kwargs
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_pos = any(p.kind == p.VAR_POSITIONAL for p in params)
    if isinstance(batch, (tuple, list)) and not hasattr(batch, "_fields") and len(batch) > 1:
        if var_pos or len(positional) >= len(batch):
            return tuple(batch), {}
    if isinstance(batch, dict) and batch:
        names = {p.name for p in params}
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
        if (
            all(isinstance(k, str) for k in batch)
            and (var_kw or set(batch) <= names)
            and not (len(positional) == 1 and set(batch) - {positional[0].name})
        ):
            return (), dict(batch)
    return inputs, kwargs


def _to_meta(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to("meta")
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_to_meta(o) for o in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_meta(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _to_meta(v) for k, v in obj.items()}
    return obj


def _on_meta(model: nn.Module) -> bool:
    for t in model.parameters():
        return t.device.type == "meta"
    for t in model.buffers():
        return t.device.type == "meta"
    return False


def trace(
    model: nn.Module,
    *inputs: Any,
    device: str | torch.device | None = None,
    previews: bool = True,
    **kwargs: Any,
) -> Trace:
    """Run one forward pass of `model` on `inputs` and record every step's shapes.

    `device="meta"` walks through the shapes without computing anything and without copying the weights
    (the parameters are swapped for meta tensors for the duration of the call), so a model too big to run
    can still be stepped through; a model built on the meta device is traced the same way. Gradients are
    not recorded. Returns a `Trace`; when the forward pass raises, the partial trace with `.error`.
    """
    if not isinstance(model, nn.Module):
        raise NbdebugError(f"trace() needs an nn.Module as its first argument, got {describe(model)}")
    if not inputs and not kwargs:
        raise NbdebugError(
            f"trace() needs the input for {type(model).__name__}'s forward pass, e.g. "
            "nbdebug.trace(model, torch.randn(8, 1, 28, 28))"
        )
    if device is not None and torch.device(device).type != "meta":
        raise NbdebugError(f"trace(device=...) only supports 'meta' (shapes without compute), got {device!r}")
    meta = device is not None or _on_meta(model)
    args, kw = _call_args(model, inputs, kwargs)
    if meta:
        args, kw = _to_meta(args), _to_meta(kw)

    state = _State(model, previews=previews and not meta)
    error: TraceError | None = None
    output: Any = None
    t0 = time.perf_counter()
    # trace never changes the mode, so eval-mode norm layers' running statistics need no copy
    with preserved(model, rng=not meta, copy_eval_norm_buffers=False), HookSet() as hooks:
        for m in {id(m): m for m in model.modules()}.values():
            hooks.forward_pre(m, _pre_hook(state), with_kwargs=True)
            hooks.forward(m, _post_hook(state), with_kwargs=True)
        try:
            with torch.no_grad():
                state.start()
                if meta and not _on_meta(model):
                    swapped = {n: torch.empty_like(t, device="meta") for n, t in model.named_parameters()}
                    swapped.update({n: torch.empty_like(t, device="meta") for n, t in model.named_buffers()})
                    output = torch.func.functional_call(model, swapped, args, kw)
                else:
                    output = model(*args, **kw)
        except Exception as exc:
            state.stop()
            error = _make_error(state, exc)
        finally:
            state.stop()
    seconds = time.perf_counter() - t0
    in_tensors = _leaves(args) + _leaves(kw)
    return Trace(
        steps=state.steps,
        error=error,
        model_type=type(model).__name__,
        input_repr=_args_struct(tuple(args), kw),
        output_repr=_struct(output) if error is None else "",
        device="meta" if meta else str(in_tensors[0].device if in_tensors else "cpu"),
        seconds=seconds,
        total_params=state.params(model),
    )


def _make_error(state: _State, exc: BaseException) -> TraceError:
    steps = state.steps
    idx = state.failed_function
    if idx is None:
        # innermost module still open when the exception escaped
        open_steps = [i for i in state.stack]
        idx = open_steps[-1] if open_steps else None
    for i in state.stack:
        if steps[i].status != "ok" and i != idx:
            steps[i].status = "incomplete"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if idx is None:
        return TraceError(
            where=type(state.root).__name__, message=message, exception_type=type(exc).__name__,
            hint="the forward pass raised before any layer ran: check the inputs' types and count",
            type=type(state.root).__name__,
        )  # fmt: skip
    step = steps[idx]
    step.status = "error"
    module = state.modules[idx]
    try:
        hint = _hint(step, module, exc, steps)
    except Exception:  # never let a hint hide the real error
        hint = f"{step.name} ({step.type}) raised."
    return TraceError(
        where=step.name,
        message=message,
        hint=hint,
        step=idx,
        type=step.type,
        exception_type=type(exc).__name__,
        input_shapes=list(step.input_shapes),
    )
