"""The architecture zoo: models nobody here wrote, each with small deterministic inputs.

`ZOO` lists `Entry`s: a name, a builder that returns `(model, args, kwargs)`, tags (`hf`, `builtin`,
`classic`, `torchinfo`, `hard`, `slow`, ...), where the architecture came from, the packages it needs
(`requires`: the test skips it with `pytest.importorskip` when one is missing; nbdebug itself never
needs them) and the checks known to fail today (`known`: check name -> the reason, an "issue 16 defect
N: ..." or a new defect). `tests/test_zoo.py` runs every entry; `bench/bench_zoo.py` times nbdebug.trace
against torchinfo over it.

Builders are called under `build(entry)`, which seeds torch, `random` and NumPy, sets HF_HUB_OFFLINE=1
(nothing is ever downloaded: every Hugging Face model is built from a small config in code) and
returns a fresh model each time: a zoo model is never shared between two checks.
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

Built = tuple[nn.Module, tuple, dict]

# Nothing in the zoo is ever downloaded; huggingface_hub reads these when it is first imported, so they are
# set before any builder imports transformers (and again in build(), in case it was imported earlier).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The checks test_zoo.py makes for every entry; `Entry.known` keys are among these.
CHECKS = (
    "real",  # trace(model, *args) returns, .error is None (or names the expected failing step)
    "real_shapes",  # the root step's output shapes == the shapes of the model's real output
    "meta",  # trace(..., device="meta") returns, .error is None
    "meta_shapes",  # every step's output shapes on meta == on the real trace, and the root's == real output
    "params",  # Trace.total_params == sum of the unique parameters' numel()
    "unchanged_real",  # the model is unchanged after the real trace (tests/unchanged.py)
    "unchanged_meta",  # ... and after the meta trace
)

# A failure found and not fixed yet goes in an entry's `known` (check -> reason), as "issue N defect M: ..."
# or "new defect X: ..."; test_zoo runs it as xfail(strict=True). Issue 16's defects 1-9 and the zoo's new
# defects A-G are fixed, each with its regression test in test_zoo.py: none is declared today.


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[[], Built]
    tags: frozenset[str]
    source: str
    requires: tuple[str, ...] = ()
    known: Mapping[str, str] = field(default_factory=dict)
    # the step the model's own error is reported at, for entries that fail on purpose
    raises_at: str | None = None
    # why this model cannot run on the meta device in PyTorch itself (checked by test_zoo: a plain
    # meta forward pass fails too); then the meta trace must report the failure in .error, naming a step
    meta_unsupported: str | None = None
    # why a meta trace of this model must raise NbdebugError (issue 16: a jit.trace'd model on meta)
    meta_nbdebug_error: str | None = None

    def available(self) -> bool:
        return all(importlib.util.find_spec(r) is not None for r in self.requires)

    def __repr__(self) -> str:  # pytest ids and failure messages
        return f"Entry({self.name})"


ZOO: list[Entry] = []


def register(
    name: str,
    *,
    tags: str = "",
    source: str,
    requires: tuple[str, ...] = (),
    known: Mapping[str, str] | None = None,
    raises_at: str | None = None,
    meta_unsupported: str | None = None,
    meta_nbdebug_error: str | None = None,
) -> Callable[[Callable[[], Built]], Callable[[], Built]]:
    """Decorator: add the builder to the zoo under `name` (unique)."""

    def deco(fn: Callable[[], Built]) -> Callable[[], Built]:
        if any(e.name == name for e in ZOO):
            raise ValueError(f"duplicate zoo entry {name!r}")
        bad = set(known or {}) - set(CHECKS)
        if bad:
            raise ValueError(f"{name}: unknown checks {sorted(bad)}")
        ZOO.append(
            Entry(
                name, fn, frozenset(tags.split()), source, tuple(requires), dict(known or {}), raises_at,
                meta_unsupported, meta_nbdebug_error,
            )
        )  # fmt: skip
        return fn

    return deco


def seed_everything(seed: int = 0) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass


def build(entry: Entry) -> Built:
    """A fresh model and inputs for `entry`, deterministic, offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    seed_everything(0)
    model, args, kwargs = entry.builder()
    seed_everything(0)
    return model, tuple(args), dict(kwargs)


def get(name: str) -> Entry:
    for e in ZOO:
        if e.name == name:
            return e
    raise KeyError(name)


def _load() -> None:
    from . import builtin, classic, hard, hf, torchinfo_models  # noqa: F401  (importing registers)


_load()
