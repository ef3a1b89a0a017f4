"""nbdebug: Jupyter-native debugging tools for PyTorch.

`%load_ext nbdebug` registers the `%nn_*` magics. Every panel has a plain API underneath that returns
data (docs/ARCHITECTURE.md). Core modules are imported here and their public names bound over the submodule
attributes (`nbdebug.trace` is the function even though `nbdebug/trace.py` is a module); panels are
imported lazily so that a script that only traces shapes never imports ipywidgets.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from ._core.errors import NbdebugError
from ._core.findings import CATALOGUE, Finding

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "trace": "shapes.trace",
    "Trace": "shapes.trace",
    "Step": "shapes.trace",
    "TraceError": "shapes.trace",
    "shapes": "shapes.panel",
    "memory": "memory.api",
    "MemoryReport": "memory.report",
    "check": "sanity.check",
    "CheckReport": "sanity.check",
    "Report": "sanity.check",
    "gradcheck": "sanity.gradcheck",
    "GradcheckResult": "sanity.gradcheck",
    "overfit": "sanity.overfit",
    "OverfitResult": "sanity.overfit",
    "watch": "monitor.watch",
    "Watch": "monitor.watch",
    "watch_gan": "monitor.watch_gan",
    "watch_ranks": "monitor.ranks_run",
    "DistributedRun": "monitor.ranks_run",
    "GanWatch": "monitor.gan",
    "predictions": "predictions.compute",
    "PredictionReport": "predictions.report",
    "TopkTracker": "predictions.topk",
    "binary_logits": "predictions.compute",
    "filters": "predictions.filters",
    "FilterView": "predictions.filters",
    "FocalLoss": "predictions.focal",
    "search": "search.run",
    "SearchResult": "search.result",
    "loguniform": "search.space",
    "uniform": "search.space",
    "choice": "search.space",
    "intlog": "search.space",
}

# each feature's magics (a `MAGICS` class in its `magic` module); imported only by `%load_ext nbdebug`
MAGIC_MODULES = (
    "shapes.magic",
    "memory.magic",
    "sanity.magic",
    "monitor.magic",
    "monitor.gan_magic",
    "predictions.magic",
    "search.magic",
)

__all__ = ["CATALOGUE", "Finding", "NbdebugError", "__version__", "load_ipython_extension", *_LAZY]


class _Package(types.ModuleType):
    """Keeps `nbdebug.overfit` the function after `import nbdebug.overfit` (or `from nbdebug.overfit
    import ...`): the import system binds a submodule as an attribute of its package, which would hide
    the public function of the same name (overfit, trace, memory, watch, predictions, filters)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbdebug' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbdebug`: register the magics (imported here so core never imports IPython)."""
    for feature in MAGIC_MODULES:
        ipython.register_magics(importlib.import_module(f"{__name__}.{feature}").MAGICS)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext nbdebug`: nothing global to undo; magics stay until the kernel restarts."""
