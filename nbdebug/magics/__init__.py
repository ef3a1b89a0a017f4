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
    for feature in FEATURES:
        ipython.register_magics(importlib.import_module(f"{__name__}.{feature}").MAGICS)
    return list(FEATURES)
