"""nbdebug: Jupyter-native debugging tools for PyTorch.

`%load_ext nbdebug` registers the `%nn_*` magics. Every panel has a plain API underneath that returns
data (see DESIGN.md). Core modules are imported here and their public names bound over the submodule
attributes (`nbdebug.trace` is the function even though `nbdebug/trace.py` is a module); panels are
imported lazily so that a script that only traces shapes never imports ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import NbdebugError
from .findings import CATALOGUE, Finding

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "trace": "trace",
    "Trace": "trace",
    "Step": "trace",
    "TraceError": "trace",
    "shapes": "widgets.shapes",
    "memory": "memory",
    "MemoryReport": "memory",
    "check": "sanity",
    "Report": "sanity",
    "gradcheck": "sanity",
    "GradcheckResult": "sanity",
    "overfit": "overfit",
    "OverfitResult": "overfit",
    "watch": "watch",
    "Watch": "watch",
    "watch_gan": "gan",
    "GanWatch": "gan",
    "predictions": "predictions",
    "PredictionReport": "predictions",
    "filters": "filters",
    "FilterView": "filters",
    "FocalLoss": "losses",
}

__all__ = ["CATALOGUE", "Finding", "NbdebugError", "__version__", "load_ipython_extension", *_LAZY]


# Core modules whose public function shares the module's name: import them now and bind the names, so
# that a later `import nbdebug.trace` (which binds the submodule only on first import) cannot shadow them.
for _name, _module in _LAZY.items():
    if "." in _module:
        continue
    try:
        _mod = importlib.import_module(f".{_module}", __name__)
    except ModuleNotFoundError as _e:  # a feature not built in this checkout
        if _e.name != f"{__name__}.{_module}":
            raise
        continue
    globals()[_name] = getattr(_mod, _name)
del _name, _module


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
    from .magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext nbdebug`: nothing global to undo; magics stay until the kernel restarts."""
