"""Layer-by-layer shape trace of one forward pass: modules AND the functional ops between them.

`trace(model, *inputs)` runs one forward pass with forward pre/post hooks on every submodule and a
`TorchFunctionMode` that sees the functional operations written in the user's own `forward`
(`torch.flatten`, `view`, `cat`, the `+` of a residual, `F.interpolate`, `permute`): module-only summaries
are blind to those, and that is where shape bugs live. Operations inside built-in `torch.nn` layers
(the `F.conv2d` inside `nn.Conv2d`) are not separate steps: the layer is the step.

When the forward pass raises, the steps before the failure are kept and `Trace.error` names the failing
step (the one that raised the exception that escaped, not one whose exception `forward` caught), its
input shapes, the original message and a hint in plain words. The model always comes back unchanged
(hooks, mode, requires_grad, buffers, tensor attributes, weights a layer writes in place, RNG).

Any model: a ScriptModule is one opaque step (shapes in and out); a `torch.compile`d model is traced
eagerly (`torch.compiler.set_stance("force_eager")`: the same modules and weights, no recompilation);
a lazy module is materialized by the pass, as by its first call, and counted afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError, describe
from .._core.hooks import HookSet, preserved
from .hints import _hint
from .meta import MetaRecorder, Shadows, check_supported, meta_walk, to_meta
from .record import _State, attach, type_name
from .result import Step, Trace, TraceError
from .values import _args_struct, _leaves, _struct

__all__ = ["Step", "Trace", "TraceError", "trace"]


def _call_args(model: nn.Module, inputs: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """A single tuple/list or dict batch is unpacked when `forward` takes its items as arguments."""
    if len(inputs) != 1 or kwargs:
        return inputs, kwargs
    (batch,) = inputs
    forward = getattr(model, "_orig_mod", model).forward  # a torch.compile'd module: the original's
    try:
        params = list(inspect.signature(forward).parameters.values())
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
    if meta:
        check_supported(model)
    args, kw = _call_args(model, inputs, kwargs)
    shadows = Shadows()
    if meta:
        args, kw = to_meta(args, shadows), to_meta(kw, shadows)

    state = _State(model, previews=previews and not meta)
    error: TraceError | None = None
    output: Any = None
    exc: Exception | None = None
    t0 = time.perf_counter()
    # trace never changes the mode, so eval-mode norm layers' running statistics need no copy
    with preserved(model, rng=not meta, copy_eval_norm_buffers=False), HookSet() as hooks:
        attach(hooks, state, model)
        try:
            walk = meta_walk(model, hooks) if meta else contextlib.nullcontext()
            with torch.no_grad(), _eager(), walk:
                state.start(MetaRecorder(state, shadows) if meta else None)
                try:
                    output = model(*args, **kw)
                finally:
                    state.stop()  # before the meta walk's device mode leaves the mode stack
        except Exception as e:
            exc = e
        failing = state.finish(exc)
        if exc is not None:
            error = _make_error(state, exc, failing, meta)
    if state.lazy:
        state.recount_params()
    seconds = time.perf_counter() - t0
    in_tensors = _leaves(args) + _leaves(kw)
    return Trace(
        steps=state.steps,
        error=error,
        model_type=type_name(model),
        input_repr=_args_struct(tuple(args), kw),
        output_repr=_struct(output) if error is None else "",
        device="meta" if meta else str(in_tensors[0].device if in_tensors else "cpu"),
        seconds=seconds,
        total_params=state.params(model),
        notes=state.notes,
    )


def _eager() -> contextlib.AbstractContextManager:
    """torch.compile'd code (a compiled model, submodule or function) runs eagerly during the trace: the
    hooks would make dynamo recompile, and fail. Nothing is compiled unless dynamo was imported."""
    if "torch._dynamo" not in sys.modules:
        return contextlib.nullcontext()
    return torch.compiler.set_stance("force_eager")


def _make_error(state: _State, exc: BaseException, idx: int | None, meta: bool) -> TraceError:
    steps = state.steps
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if idx is None:
        return TraceError(
            where=state.names[id(state.root)], message=message, exception_type=type(exc).__name__,
            hint="the forward pass raised before any layer ran: check the inputs' types and count",
            type=type_name(state.root),
        )  # fmt: skip
    step = steps[idx]
    module = state.modules[idx]
    try:
        hint = _hint(step, module, exc, steps, meta=meta)
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
