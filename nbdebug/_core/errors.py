"""The one exception type users see from nbdebug.

Errors name the culprit (layer, argument, shapes) so that the user never has to read a traceback from
deep inside torch. Magics turn an `NbdebugError` into IPython's `UsageError`.
"""

from __future__ import annotations


class NbdebugError(Exception):
    """A user mistake or an input nbdebug cannot work with; the message says which and why."""


def describe(obj: object) -> str:
    """Short description of a value for error messages: a tensor's shape and dtype, else its type."""
    import torch

    if isinstance(obj, torch.Tensor):
        return f"Tensor{tuple(obj.shape)} {str(obj.dtype).removeprefix('torch.')} on {obj.device}"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(describe(o) for o in list(obj)[:4])
        more = ", ..." if len(obj) > 4 else ""
        return f"{type(obj).__name__}[{inner}{more}]"
    if isinstance(obj, dict):
        inner = ", ".join(f"{k!r}: {describe(v)}" for k, v in list(obj.items())[:4])
        return f"dict{{{inner}}}"
    return type(obj).__name__
