"""The `%nn_*` magics: parse arguments, call the plain API, display the panel.

Each feature has its own module here defining one `Magics` subclass named `MAGICS`; `register` loads
them all. A magic never computes anything itself.
"""

from __future__ import annotations

import importlib
from typing import Any

FEATURES = ("shapes", "memory", "sanity", "watch", "predictions", "gan", "search")


def register(ipython: Any) -> list[str]:
    """Register every feature's magics with `ipython`; returns the feature modules loaded."""
    loaded = []
    for feature in FEATURES:
        name = f"{__name__}.{feature}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:  # a feature not built yet in this checkout
            if e.name == name:
                continue
            raise
        ipython.register_magics(module.MAGICS)
        loaded.append(feature)
    return loaded
