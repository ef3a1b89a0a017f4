"""`optimizer.step(closure)`: the step whose forward and backward run inside `step()` itself.

PyTorch Lightning's automatic optimization always passes a closure (training_step, zero_grad and
backward run inside `optimizer.step(closure)`), and so does LBFGS. An optimizer's step pre-hook fires
before the closure has computed this step's loss and gradients, so a monitor that read them there would
read the previous step's. `after_first_call` hands the optimizer a wrapper that calls the user's closure
unchanged and then tells the monitor that the loss and gradients of this step are ready, once: LBFGS
re-evaluates the closure several times inside one step, and those passes belong to the same step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _position(optimizer: Any, args: tuple) -> int:
    """Where a positional closure sits in a step hook's `args`: torch passes `(optimizer, *call_args)`."""
    return 1 if args and args[0] is optimizer else 0


def closure_of(optimizer: Any, args: tuple, kwargs: dict) -> Callable[[], Any] | None:
    """The closure passed to `optimizer.step(...)` (positionally or as `closure=`), else None."""
    i = _position(optimizer, args)
    closure = kwargs.get("closure", args[i] if len(args) > i else None)
    return closure if callable(closure) else None


def after_first_call(
    optimizer: Any, args: tuple, kwargs: dict, ready: Callable[[], None]
) -> tuple[tuple, dict] | None:
    """(args, kwargs) for `optimizer.step()` (as a step pre-hook receives and returns them) with its closure
    wrapped so that `ready()` runs after the closure's first call returns; None when `step()` got no
    closure. The wrapper returns what the closure returns and changes nothing it computes."""
    closure = closure_of(optimizer, args, kwargs)
    if closure is None:
        return None
    called = False

    def wrapped() -> Any:
        nonlocal called
        out = closure()
        if not called:
            called = True
            ready()
        return out

    if "closure" in kwargs:
        return args, {**kwargs, "closure": wrapped}
    i = _position(optimizer, args)
    return (*args[:i], wrapped, *args[i + 1 :]), kwargs
