"""The recording behind `trace`: forward pre/post hooks on every module and a `TorchFunctionMode` that sees
the functional ops written in user code, switched off inside built-in layers (the layer is the step).

Hooks never raise into the model: a failure of nbdebug's own bookkeeping becomes a note on the trace.
Pre-hooks go first (`prepend=True`), so a step is open when a user's pre-hook raises; post-hooks are
`always_call=True`, so a layer that raises closes its step even when `forward` catches the exception.
ScriptModules take no hooks: a module-global pair of hooks (registered only when the model holds one)
makes each ScriptModule called from Python one opaque step.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn
from torch._C import DisableTorchFunction as _NoTorchFunction
from torch.nn.modules import module as _module_globals
from torch.overrides import TorchFunctionMode, _get_current_function_mode, _pop_mode, _push_mode

from .._core.hooks import HookSet
from . import arithmetic
from .result import Step, _fmt_shape
from .values import _NOISE, _args_struct, _fn_display, _leaves, _preview, _shapes, _struct

_MAX_NOTES = 5


def _is_builtin(module: nn.Module) -> bool:
    """torch's own layers and ScriptModules: one step each, the ops inside them are not recorded (on meta
    a TorchScript graph runs some ops through Python decompositions the recorder would see)."""
    mod = type(module).__module__
    return mod.startswith(("torch.nn.", "torch.ao.", "torch.jit."))


def _is_script(module: nn.Module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


def type_name(module: nn.Module) -> str:
    """The class name, or for a ScriptModule the name of the class it was made from."""
    if _is_script(module):
        return f"{getattr(module, 'original_name', type(module).__name__)} (TorchScript)"
    return type(module).__name__


def _numel(p: torch.Tensor | None) -> int:
    """0 for a lazy module's parameter that its first call has not materialized yet."""
    if p is None or isinstance(p, nn.parameter.UninitializedTensorMixin):
        return 0
    return p.numel()


class _State:
    def __init__(self, model: nn.Module, previews: bool) -> None:
        self.steps: list[Step] = []
        self.modules: list[nn.Module | None] = []  # per step, the module (None for functions)
        self.stack: list[int] = []
        self.calls: dict[int, int] = {}
        self.names = {}
        for name, m in model.named_modules(remove_duplicate=False):
            self.names.setdefault(id(m), name or type_name(model).removesuffix(" (TorchScript)"))
        self.root = model
        self.previews = previews
        self.param_counts: dict[int, int] = {}
        self.lazy = False  # a lazy module's parameters were counted before its first call
        self.count_params(model)
        self.raised: list[tuple[int, BaseException]] = []  # (step, exception) in the order raised
        self.outer_exc = sys.exc_info()[1]  # an exception being handled where trace() was called
        self.notes: list[str] = []
        self.script_ids: set[int] = set()
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

    def start(self, recorder: _Recorder | None = None) -> None:
        self.mode = recorder if recorder is not None else _Recorder(self)
        self._set_mode(True)

    def stop(self) -> None:
        """Take the recorder off the mode stack whatever state an exception left it in."""
        if self.mode_on and _get_current_function_mode() is self.mode:
            _pop_mode()
        self.mode_on = False
        self.mode = None

    def note(self, where: str, exc: BaseException) -> None:
        """nbdebug's own bookkeeping failed (never the model's error): say so, once per kind."""
        text = f"nbdebug could not record {where}: {type(exc).__name__}: {exc}"[:200]
        if len(self.notes) < _MAX_NOTES and text not in self.notes:
            self.notes.append(text)

    def params(self, m: nn.Module) -> int:
        key = id(m)
        if key not in self.param_counts:
            self.param_counts[key] = sum(_numel(p) for p in m.parameters())
        return self.param_counts[key]

    def count_params(self, model: nn.Module) -> None:
        """Parameter count of every submodule in one bottom-up pass (asking each module for its
        `parameters()` walks its subtree again: quadratic in depth, and it was most of trace's overhead)."""
        counts = self.param_counts

        def visit(m: nn.Module) -> int:
            key = id(m)
            if key not in counts:
                try:
                    own = sum(p.numel() for p in m._parameters.values() if p is not None)
                except ValueError:  # an uninitialized (lazy) parameter
                    own = sum(_numel(p) for p in m._parameters.values())
                    self.lazy = True
                counts[key] = own + sum(visit(c) for c in m._modules.values() if c is not None)
            return counts[key]

        visit(model)
        counts[id(model)] = sum(_numel(p) for p in model.parameters())  # tied weights counted once

    def recount_params(self) -> None:
        """After a pass that materialized lazy parameters: every module step's count again."""
        self.param_counts.clear()
        self.count_params(self.root)
        for step, m in zip(self.steps, self.modules):
            if m is not None:
                step.params = self.params(m)

    def open_step(self, step: Step, module: nn.Module | None) -> int:
        self.steps.append(step)
        self.modules.append(module)
        return step.index

    def parent(self) -> tuple[int | None, int]:
        if not self.stack:
            return None, 0
        top = self.stack[-1]
        return top, self.steps[top].depth + 1

    def close(self, module: nn.Module) -> int | None:
        """Pop the most recent open step of `module` (and any step a caught exception left above it)."""
        stack, modules = self.stack, self.modules
        for pos in range(len(stack) - 1, -1, -1):
            if modules[stack[pos]] is module:
                idx = stack[pos]
                del stack[pos:]
                return idx
        return None

    def record_raise(self, index: int, exc: BaseException) -> None:
        step = self.steps[index]
        step.status = "error"
        step.output_repr = f"raised {type(exc).__name__}"
        self.raised.append((index, exc))

    def finish(self, exc: BaseException | None) -> int | None:
        """Statuses once the pass is over; the index of the step that raised `exc` (the escaping error):
        the first step that saw it (innermost), else one that saw an exception it was raised from. Steps
        that raised an exception the forward pass caught are 'caught'; the enclosing steps of the
        failing one are 'incomplete'."""
        failing = None
        if exc is not None:
            chain = [exc]
            while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
                nxt = chain[-1].__cause__ or chain[-1].__context__
                if nxt in chain or len(chain) > 8:
                    break
                chain.append(nxt)  # type: ignore[arg-type]
            for e in chain:
                failing = next((i for i, seen in self.raised if seen is e), None)
                if failing is not None:
                    break
            if failing is None and self.stack:
                failing = self.stack[-1]  # a step whose close hook never ran (a ScriptModule's)
        for i, seen in self.raised:
            if i != failing and exc is not None and seen is exc:  # an enclosing step the error went through
                self.steps[i].status, self.steps[i].output_repr = "incomplete", ""
            elif i != failing:
                self.steps[i].status = "caught"
        for i in self.stack:
            if i != failing and self.steps[i].status != "ok":
                self.steps[i].status = "incomplete"
        if failing is not None:  # its error is shown in full below the table
            self.steps[failing].status, self.steps[failing].output_repr = "error", ""
        return failing


def attach(hooks: HookSet, state: _State, model: nn.Module) -> None:
    """Pre/post hooks on every module except ScriptModules (they refuse hooks); those get global ones."""
    pre, post = _pre_hook(state), _post_hook(state)
    scripts = state.script_ids
    for m in {id(m): m for m in model.modules()}.values():
        if _is_script(m):
            scripts.add(id(m))
        else:
            hooks.forward_pre(m, pre, with_kwargs=True, prepend=True)
            hooks.forward(m, post, with_kwargs=True, always_call=True)
    if scripts:
        # only ScriptModules called from Python get here (what runs inside a TorchScript graph does not)
        def script_pre(module: nn.Module, args: tuple) -> None:
            if id(module) in scripts:
                pre(module, args, {})

        def script_post(module: nn.Module, args: tuple, output: Any) -> None:
            if id(module) in scripts:
                post(module, args, {}, output)

        hooks.add(_module_globals.register_module_forward_pre_hook(script_pre))
        hooks.add(_module_globals.register_module_forward_hook(script_post, always_call=True))


def _pre_hook(state: _State):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        try:
            if state.mode_on:
                with _NoTorchFunction():  # our own metadata reads are not steps, and cheaper without the mode
                    index = _pre(state, module, args, kwargs)
            else:
                index = _pre(state, module, args, kwargs)
            state.enter_module(index, module)
        except Exception as e:  # never into the model
            state.note(f"the input of {state.names.get(id(module), type(module).__name__)}", e)

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
    simple = len(args) == 1 and not kwargs and type(args[0]) is torch.Tensor  # the common case, kept cheap
    if simple:
        try:
            shapes = [tuple(args[0].shape)]
            tensors = [args[0]]
            input_repr = _fmt_shape(shapes[0])
        except RuntimeError:  # a nested tensor has no single shape
            simple = False
    if not simple:
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
        type=type_name(module) if key in state.script_ids else type(module).__name__,
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
        try:
            stack = state.stack
            if stack and state.modules[stack[-1]] is module:  # the common case, kept cheap
                index = stack.pop()
            else:
                index = state.close(module)
                if index is None:
                    return
        except Exception as e:
            state.note(f"the end of {state.names.get(id(module), type(module).__name__)}", e)
            return
        try:
            exc = sys.exc_info()[1] if output is None else None
            if exc is not None and exc is not state.outer_exc:  # called because the module raised
                state.record_raise(index, exc)
            elif state.mode_on:
                with _NoTorchFunction():
                    _post(state, index, output)
            else:
                _post(state, index, output)
        except Exception as e:
            state.steps[index].status = "ok"
            state.note(f"the output of {state.steps[index].name}", e)
        finally:
            state.leave_module(index)

    return hook


def _post(state: _State, idx: int, output: Any) -> None:
    step = state.steps[idx]
    step.status = "ok"
    simple = type(output) is torch.Tensor
    if simple:
        try:
            step.output_shapes = [tuple(output.shape)]
            tensors = [output]
            step.output_repr = _fmt_shape(step.output_shapes[0])
        except RuntimeError:  # a nested tensor
            simple = False
    if not simple:
        tensors = _leaves(output)
        step.output_shapes = _shapes(tensors)
        step.output_repr = _struct(output)
    step.dtype = str(tensors[0].dtype).removeprefix("torch.") if tensors else None
    if state.previews and not step.is_container:
        state.paused = True
        try:
            step.preview = _preview(output)
        finally:
            state.paused = False


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
        except Exception as exc:
            try:
                state.record_raise(self._add(func, args, kwargs, in_tensors, None), exc)
            except Exception as e:
                state.note(f"the inputs of {name}", e)
            raise
        try:
            if _leaves(out):
                self._add(func, args, kwargs, in_tensors, out)
        except Exception as e:  # never into the model
            state.note(f"the output of {name}", e)
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
