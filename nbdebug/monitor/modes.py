"""Taking a `TorchFunctionMode` of ours off the stack: only when it is on top, since modes must nest, and
saying so when it is not (the user's forward left a mode of its own above it), never raising."""

from __future__ import annotations

from typing import Any

import torch

from .records import record_error


def take_off(mode: Any, internal_errors: list[str], where: str) -> bool:
    """Exit `mode` if it is the innermost mode; else record why it stays (an internal error of `where`)."""
    stack = torch.overrides._get_current_function_mode_stack()
    if stack and stack[-1] is mode:
        mode.__exit__(None, None, None)
        return True
    record_error(internal_errors, where, RuntimeError("mode stack changed"))
    return False
