"""Failure hints: when a forward pass raises, say in plain words what the failing step expected and which
earlier step made the shape it got."""

from __future__ import annotations

from torch import nn

from . import arithmetic
from .result import Step, _fmt_shape


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


def _hook_that_raised(module: nn.Module | None, exc: BaseException) -> tuple[str, str] | None:
    """(kind, name) of the user's forward (pre-)hook on `module` whose code raised `exc`, if one did."""
    if module is None:
        return None
    codes = set()
    tb = exc.__traceback__
    while tb is not None:
        codes.add(tb.tb_frame.f_code)
        tb = tb.tb_next
    for kind, table in (("forward pre-hook", "_forward_pre_hooks"), ("forward hook", "_forward_hooks")):
        for h in (getattr(module, table, None) or {}).values():
            fn = getattr(h, "__func__", h)
            call = type(h).__dict__.get("__call__")  # a callable object's method
            code = getattr(fn, "__code__", None) or getattr(call, "__code__", None)
            if code in codes:
                return kind, getattr(fn, "__qualname__", None) or type(h).__qualname__
    return None


_NEEDS_VALUES = ("cannot be called on meta", "Cannot copy out of meta", "meta tensor", "data-dependent")


def _meta_hint(step: Step, msg: str) -> str | None:
    """On the meta device tensors have shapes and no values: what failed for that reason, in words."""
    if "no fake impl or Meta kernel" in msg or "no Meta kernel" in msg:
        return (
            f"{step.name} ({step.type}) uses an operation PyTorch has no meta implementation for, so the meta "
            "walk cannot go past it. Trace without device='meta' (on a smaller input) to see this step."
        )
    if "is not on the expected device" in msg or "same device" in msg:
        return (
            f"a tensor {step.name} uses is not on the meta device: one made in forward with an explicit "
            "device (device='cpu', torch.from_numpy) or kept as a plain attribute. Make it with "
            "device=x.device (or register it as a buffer), or trace without device='meta'."
        )
    if any(s in msg for s in _NEEDS_VALUES):
        return (
            f"on the meta device tensors have shapes but no values, and {step.name} ({step.type}) needs one: "
            "an op that reads values (.item(), .tolist(), .all(), a Python `if` on a tensor, a mask's "
            "contents). PyTorch itself cannot run this on meta; trace without device='meta' (on a "
            "smaller input) to see the shapes."
        )
    return None


def _hint(
    step: Step, module: nn.Module | None, exc: BaseException, steps: list[Step], meta: bool = False
) -> str:
    msg = str(exc)
    shapes = step.input_shapes
    hook = _hook_that_raised(module, exc)
    if hook is not None:
        kind, name = hook
        when = "before its forward ran" if kind == "forward pre-hook" else "after its forward returned"
        listed = ", ".join(_fmt_shape(s) for s in shapes) or "-"
        return f"the {kind} {name} registered on {step.name} raised {when}, with input {listed}."
    if meta:
        hint = _meta_hint(step, msg)
        if hint is not None:
            return hint
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
    if isinstance(exc, TypeError) and "forward()" in msg and "argument" in msg:
        return f"{step.name}'s forward() was called with arguments it does not take: check the inputs' types and count."
    return f"{step.name} ({step.type}) raised with input {', '.join(_fmt_shape(s) for s in shapes) or '-'}{after}."
