"""`nbdebug.memory`: one name for the four memory tools.

`nbdebug.memory(*objects)` is the tensor inventory; `nbdebug.memory.step(model, batch, loss_fn)` measures
one training step's activation memory and forecasts the peak by batch size; `nbdebug.memory.watch()`
samples allocated/reserved memory in a background thread; `nbdebug.memory.cuda()` reads the CUDA allocator.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from .cuda import cuda_memory
from .inventory import inventory
from .live import watch
from .report import MemoryReport
from .step import step


class Memory:
    """The callable behind `nbdebug.memory` (see the module docstring)."""

    step = staticmethod(step)
    watch = staticmethod(watch)
    cuda = staticmethod(cuda_memory)

    def __call__(
        self,
        *objects: Any,
        namespace: Mapping[str, Any] | None = None,
        names: list[str] | None = None,
        all: bool = False,
        gpu: bool = True,
        unreachable_warn_bytes: int = 1 << 20,
    ) -> MemoryReport:
        """Inventory of the tensors reachable from `objects` (or `namespace`, or the caller's globals).

        Every tensor is named by the path that reaches it (`model.encoder.0.weight`,
        `optimizer.state[encoder.0.weight].exp_avg`, `batch["image"]`), with role, shape, dtype, device
        and bytes; each storage counts once in the totals. `names` labels the objects (default: the
        caller's variable names). `all=True` also lists tensors only the garbage collector can find
        (leaks). `gpu=False` skips the CUDA allocator section.
        """
        return inventory(
            *objects, namespace=namespace, names=names, all=all, gpu=gpu,
            unreachable_warn_bytes=unreachable_warn_bytes, caller=sys._getframe(1),
        )  # fmt: skip

    def __repr__(self) -> str:
        return "<nbdebug.memory: memory(*objects), .step(model, batch, loss_fn), .watch(), .cuda()>"


memory = Memory()
