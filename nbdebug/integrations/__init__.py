"""Where people train: PyTorch Lightning and the Hugging Face `Trainer`, seen by the same monitor.

`nbdebug.watch(model)` works unchanged around `trainer.fit(lit_module, ...)` and `Trainer(...).train()`:
the optimizer is adopted when the framework steps it (`monitor/stats.py`), its `step(closure)` is read
after the closure ran (`monitor/closure.py`), the loss is read where the framework calls a loss function
or backward, and passes with gradients off are validation. What each framework needs on top is in its
module here, with a callback for scripts (`lightning.NbdebugCallback`, `transformers.NbdebugCallback`).

nbdebug imports neither framework: `watch_class` looks only at the modules the user already imported
(`sys.modules`), and the integration modules import a framework only when its callback is built.
"""

from __future__ import annotations

import sys
from typing import Any

# the top-level packages whose classes we recognise; none is imported by nbdebug itself
LIGHTNING_MODULES = ("lightning.pytorch", "pytorch_lightning")
TRANSFORMERS_MODULE = "transformers"


def _imported_class(module: str, name: str) -> type | None:
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def is_lightning_module(model: Any) -> bool:
    """Whether `model` is a LightningModule (of `lightning.pytorch` or `pytorch_lightning`), without
    importing either."""
    classes = [_imported_class(m, "LightningModule") for m in LIGHTNING_MODULES]
    return any(c is not None and isinstance(model, c) for c in classes)


def is_transformers_model(model: Any) -> bool:
    """Whether `model` is a Hugging Face `PreTrainedModel`, without importing `transformers`."""
    cls = _imported_class(TRANSFORMERS_MODULE, "PreTrainedModel")
    return cls is not None and isinstance(model, cls)


def watch_class(model: Any, base: type) -> type:
    """The `Watch` class for `model`: `base` with the adapter of the framework it belongs to, if any."""
    if is_lightning_module(model):
        from .lightning import LightningWatch

        return _combine(LightningWatch, base)
    if is_transformers_model(model):
        from .transformers import TransformersWatch

        return _combine(TransformersWatch, base)
    return base


def _combine(adapter: type, base: type) -> type:
    """`adapter` (a subclass of Watch) over `base` (Watch or a subclass of it, e.g. the distributed one)."""
    if issubclass(adapter, base):
        return adapter
    return type(f"{adapter.__name__}On{base.__name__}", (adapter, base), {})
