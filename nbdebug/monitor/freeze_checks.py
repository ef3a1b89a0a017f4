"""Layers frozen by accident while the rest of the model trains (`frozen-by-accident`, beside the
optimizer-level rules of `loop_checks.check_frozen`). Freezing is normal for a *pretrained* backbone's
early layers; two real bugs break that pattern and show in the model's structure:

* frozen at initialization (pytorch/vision#2164): a helper meant for pretrained backbones froze conv1 and
  layer1 of one trained from scratch, so they keep their random weights. Evidence: frozen layers whose
  values are still PyTorch's default initialization (nn.Linear / nn.Conv*: uniform within
  +-1/sqrt(fan_in), `reset_parameters`; norm layers: weight 1, bias 0). A norm layer at exactly 1 and 0
  was never trained (any update moves it): with it, a warning. The weights' signature alone is advice:
  a layer pretrained briefly at a small learning rate can keep it.
* inverted (wannabeOG/MAS-PyTorch#1): a freezing helper with its flags swapped trains the pretrained first
  layers and freezes the deeper ones, with the head training after them. A deliberate choice looks the
  same (fine-tuning only the first block for an input shift), so it is advice (info).

Frozen layers are judged only while an optimizer trains some of the model. Pure function of a summary."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._core.findings import Finding
from .rundata import RunData, _f

MIN_VALUES = 64  # a weight needs this many values for its spread to say anything
SPREAD = 0.15  # std within 15% of the uniform's bound/sqrt(3); 64 uniform draws: its std's sd is ~6.5%
_WEIGHTS = (nn.Linear, nn.modules.conv._ConvNd)
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@dataclass
class FreezeEvidence:
    """Layers with parameters, in the model's order: name, frozen (all requires_grad=False) or trainable
    (all True; mixed layers are left out), and whether their values are still the default initialization."""

    layers: list[tuple[str, bool, bool, bool]] = field(
        default_factory=list
    )  # (name, frozen, at_init, is_weight)


def _default_init(module: nn.Module) -> bool:
    """Whether `module` holds PyTorch's default initialization (see the module docstring)."""
    if isinstance(module, _NORMS):
        w, b = getattr(module, "weight", None), getattr(module, "bias", None)
        return (
            isinstance(w, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and bool((w == 1).all())
            and bool((b == 0).all())
        )
    w = getattr(module, "weight", None)
    if not isinstance(module, _WEIGHTS) or not isinstance(w, torch.Tensor):
        return False
    b = getattr(module, "bias", None)
    return uniform_init(w) and (not isinstance(b, torch.Tensor) or uniform_init(b, w[0].numel()))


def uniform_init(t: torch.Tensor, fan_in: int | None = None) -> bool:
    """Whether weight `t` (fan_in = t[0].numel()) is still nn.Linear/nn.Conv*'s default: every value within
    +-1/sqrt(fan_in) and, with >= MIN_VALUES values, the uniform's spread. A bias (`fan_in` given, its layer's)
    is only checked against the bound."""
    if t.dim() == 0 or t.numel() == 0 or (fan_in is None and (t.dim() < 2 or t.numel() < MIN_VALUES)):
        return False
    bound = 1.0 / math.sqrt(fan_in if fan_in is not None else t[0].numel())
    td = t.detach().float()
    if float(td.abs().max()) > bound * (1 + 1e-5):
        return False
    return fan_in is not None or abs(float(td.std()) / (bound / math.sqrt(3)) - 1) <= SPREAD


def _own(m: nn.Module) -> list[nn.Parameter]:
    """`m.parameters(recurse=False)` without its generator machinery (read for every module at each
    diagnosis: on a BERT, the walk cost more than the checks)."""
    return [p for p in m._parameters.values() if p is not None]


class FreezeCache:
    """`_default_init` per module, read only where a rule needs it (frozen layers, and the trainable ones
    before a frozen weight layer when the first layer trains) and recomputed only when a parameter's version
    changes: a frozen layer is read once, a run without frozen layers reads no weight at all."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[int, bool]] = {}

    def _init(self, m: nn.Module) -> bool:
        version = sum(p._version for p in _own(m))
        cached = self._seen.get(id(m))
        if cached is None or cached[0] != version:
            cached = (version, _default_init(m))
            self._seen[id(m)] = cached
        return cached[1]

    def evidence(self, modules: list[tuple[str, nn.Module]]) -> FreezeEvidence:
        """The layers of `modules` (a model's `named_modules()`), frozen or not, read fresh."""
        rows: list[tuple[str, nn.Module, bool, bool]] = []
        for name, m in modules:
            flags = {p.requires_grad for p in _own(m)}
            if len(flags) == 1:  # layers with parameters, all frozen or all trainable
                rows.append((name or "<root>", m, not flags.pop(), isinstance(m, _WEIGHTS)))
        weights = [r for r in rows if r[3]]
        first_frozen = next((i for i, r in enumerate(weights) if r[2]), None)
        before = {id(r[1]) for r in weights[:first_frozen]} if first_frozen and not weights[0][2] else set()
        ev = FreezeEvidence()
        for name, m, frozen, weight in rows:
            init = self._init(m) if frozen or id(m) in before else False
            ev.layers.append((name, frozen, init, weight))
        return ev


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def check_freeze(run: RunData) -> Iterator[Finding]:
    """frozen-by-accident from the model's layers (see the module docstring), when the optimizer trains some
    of them: frozen weight layers at their default initialization (warning); the first layers training
    while deeper frozen ones are followed by trainable layers again (info)."""
    ev: Any = getattr(run.wiring, "freeze", None)
    if ev is None or not ev.layers or not (run.steps or run.final):
        return
    trainable = [n for n, frozen, _, _ in ev.layers if not frozen]
    if not trainable or not run.groups or not any(g["params"] > g["frozen"] for g in run.groups):
        return
    at_init = [n for n, frozen, init, _ in ev.layers if frozen and init]
    init_weights = [n for n, frozen, init, weight in ev.layers if frozen and init and weight]
    if init_weights:
        # a norm layer at exactly weight 1, bias 0 was never trained (any update moves it): conclusive; the
        # weights' uniform signature alone could also be a briefly pretrained layer: advice
        exact = len(at_init) > len(init_weights)
        yield _f(
            "frozen-by-accident",
            "warning" if exact else "info",
            f"{len(at_init)} frozen layer(s) ({_names(at_init)}) still hold PyTorch's default initialization "
            f"({'norm weight 1 and bias 0 exactly, ' if exact else ''}weights uniform within +-1/sqrt(fan_in)) "
            "while the optimizer trains the rest: frozen before they were ever trained, they keep random weights",
            "freeze only layers that hold pretrained weights: load the weights before freezing, or drop the "
            "freezing when training from scratch (torchvision detection: trainable_backbone_layers=5)",
            at_init[0],
            layers=at_init[:50],
            kind="at-init",
            conclusive=exact,
        )
        return
    weights = [(n, frozen, init) for n, frozen, init, weight in ev.layers if weight]
    if len(weights) < 3 or weights[0][1]:
        return
    first_frozen = next((i for i, (_, frozen, _) in enumerate(weights) if frozen), None)
    if first_frozen is None:
        return
    frozen_run = [n for n, frozen, _ in weights[first_frozen:] if frozen]
    after = [n for n, frozen, _ in weights[first_frozen:] if not frozen]
    before = [n for n, _, init in weights[:first_frozen] if not init]  # pretrained layers that train
    last_frozen = max(i for i, (_, frozen, _) in enumerate(weights) if frozen)
    if not after or not before or not any(not f for _, f, _ in weights[last_frozen + 1 :]):
        return
    yield _f(
        "frozen-by-accident",
        "info",
        f"the model's first layers train ({_names(before)}) while deeper layers are frozen ({_names(frozen_run)}) "
        f"and the layers after them train again ({_names(after)}): the reverse of freezing a pretrained "
        "backbone's early layers, what a freezing helper with its requires_grad flags swapped does",
        "if the early layers should stay fixed, swap the flags: requires_grad=False on the first layers, True "
        "on the ones that should adapt; fine-tuning only the first block on purpose is fine",
        frozen_run[0],
        layers=frozen_run[:50],
        kind="inverted",
    )
