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

# Today's failures, by the numbering of issue 16 ("Shapes and meta on any model").
D1 = "issue 16 defect 1: meta trace replaces a shared module's weights with meta tensors"
D2 = "issue 16 defect 2: a pruned module's `weight` attribute stays a meta tensor after a meta trace"
D3 = "issue 16 defect 3: ScriptModules crash trace (register_forward_pre_hook is not supported)"
D3_META = "issue 16 defect 3: a jit.trace'd model on meta is blamed on the model, not a clear NbdebugError"
D4 = "issue 16 defect 4: lazy modules crash (parameters counted before the forward pass materializes them)"
D5 = "issue 16 defect 5: PackedSequence input / pack_padded_sequence in forward fails on meta"
D6 = "issue 16 defect 6: an exception caught inside forward switches off recording for the rest of the pass"
D7 = "issue 16 defect 7: a stale caught failure names the wrong step"
D8 = "issue 16 defect 8: torch.compile'd models get a false failure (dynamo: ... already tracked)"
D9_DEEP = "issue 16 defect 9: outputs nested more than 6 containers deep lose their shapes"
D9_OBJ = "issue 16 defect 9: tensors inside plain objects get no shape"
D9_DIST = "issue 16 defect 9: torch.distributions outputs get no shape"
D9_FACTORY = "issue 16 defect 9: factory calls without a device inside forward fail on meta"
D2_LEGACY = (
    "issue 16 defect 2 (same mechanism): the legacy weight_norm/spectral_norm pre-hook sets `weight`; after "
    "a meta trace it stays a meta tensor"
)

# Failures found by the zoo that are none of issue 16's defects (see the report of the zoo's session).
NEW_A = (
    "new defect A: a tensor attribute a module's own pre-hook recomputes (legacy spectral_norm's `weight`, "
    "train mode) keeps the trace's value: trace restores the u/v buffers, not the attribute made from them"
)
NEW_B = (
    "new defect B: after a meta trace nn.RNNBase's `_flat_weights` cache still holds meta tensors "
    "(functional_call restores module._parameters directly, bypassing RNNBase.__setattr__)"
)
NEW_C = (
    "new defect C: a nested tensor between layers (nn.TransformerEncoder's fast path with a padding mask, "
    "eval) crashes trace's own pre-hook (tuple(t.shape)); the crash is reported as the model's error"
)
NEW_D = (
    "new defect D: meta trace of an nn.DataParallel-wrapped model fails (functional_call refuses "
    "DataParallel) with an error that names no step and blames the inputs"
)
NEW_E = (
    "new defect E: meta trace leaves tensors inside dataclass inputs on the CPU (_to_meta walks only "
    "tuples, lists and dicts); the device mismatch is reported at a layer"
)
NEW_G = (
    "new defect G: an exception raised by a user's forward pre-hook on the model (registered before trace) "
    "gets step=None and the hint 'check the inputs' types and count': trace's pre-hook runs after the user's"
)
NEW_F = (
    "new defect F: a layer that writes its weight in place during forward (nn.Embedding(max_norm=...)) "
    "keeps the change after trace (trace does not save weights)"
)


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
