"""Parameter and optimizer wiring of a watched run: which trainable tensors the loss reaches (the leaves of
its backward graph) against which tensors the optimizers hold. Three bugs show here and nowhere in the
numbers until the loss stalls:

* `unregistered-submodule`: layers in a plain list/dict attribute (see `_core/wiring.py`);
* `optimizer-stale-params`: the optimizer holds tensors the model no longer has (the model re-created, or a
  layer replaced, after the optimizer was built: pytorch/pytorch#54765, spro/practical-pytorch#9); the
  backward pass never reaches them and the model's own parameters, which it does reach, are stepped by no
  optimizer;
* `params-not-in-optimizer`: parameters the backward pass reaches that no optimizer holds, while the
  optimizer holds others (a head's parameter group never appended, zjunlp/HVPNeT#5; a classifier inside the
  loss module, ifzhang/FairMOT#125).

`WiringTracker` collects (the graph of the first backward passes, the optimizers seen stepping), its
`evidence()` is a summary without tensors that `RunData.wiring` carries, and `check_wiring` is a pure
function of it. Healthy runs stay silent: a backbone frozen with requires_grad=False is not in the graph;
a second optimizer stepping the rest is seen stepping; a hand-written update changes the tensor's version.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .._core.findings import Finding
from .._core.hooks import HookSet
from .._core.wiring import Unregistered, find_unregistered, graph_leaves, unregistered_finding
from .freeze_checks import FreezeCache, FreezeEvidence, uniform_init
from .records import record_error, safe
from .rundata import RunData, _f

WALKS = 3  # backward passes whose graph is read from the start of the run ...
WALK_EVERY = 50  # ... then one in this many (a layer unfrozen later)
REWALK = 50  # steps a diagnosis reuses the model's module and parameter lists (each walk: ~0.6 ms on a BERT)


@dataclass
class WiringEvidence:
    """What `check_wiring` reads: counts and names, no tensors."""

    unregistered: list[tuple[Unregistered, bool, bool]] = field(
        default_factory=list
    )  # (u, used, in optimizer)
    missing: list[str] = field(default_factory=list)  # reached by backward, held by no optimizer, unchanged
    missing_outside: list[tuple[int, ...]] = field(default_factory=list)  # shapes of those outside the model
    outside_untrained: bool = (
        False  # one of those is a weight still at its default init (a layer never trained)
    )
    missing_inside: bool = False  # every missing one is the model's and comes before the last one held
    stale: list[tuple[int, ...]] = field(default_factory=list)  # shapes: held, not the model's, never reached
    held: int = 0  # tensors the known optimizers hold
    backwards: int = 0  # backward passes whose graph was read
    steps: int = 0  # optimizer steps of the watched optimizer
    freeze: FreezeEvidence | None = None  # the model's layers, frozen or not, at their initialization or not


class WiringTracker:
    """Collects the wiring evidence of one `StepMonitor`'s model and optimizer (see the module docstring)."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.internal_errors: list[str] = monitor.internal_errors
        self.unregistered = find_unregistered(monitor.model)
        self._seen_opts: list[weakref.ReferenceType] = []
        self._reached: dict[int, tuple[weakref.ReferenceType, int]] = {}  # id -> (param, version first seen)
        self._leaves: set[int] = set()  # every leaf reached, Parameter or not (an image optimized by LBFGS)
        self._backwards = 0
        self.walked = 0
        self._freeze = FreezeCache()
        self._structure: tuple[int, list, list] | None = None  # (step, named_modules, named_parameters)

    def attach(self, hooks: HookSet) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        hooks.add(register_optimizer_step_post_hook(self._on_step))

    @safe
    def _on_step(self, optimizer: Any, args: tuple, kwargs: dict) -> None:
        if not any(r() is optimizer for r in self._seen_opts):
            self._seen_opts.append(weakref.ref(optimizer))

    @safe
    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None:
        """Read the graph of a backward pass about to run (its first WALKS, then one in WALK_EVERY)."""
        if phase != "start":
            return
        self._backwards += 1
        if self.walked >= WALKS and self._backwards % WALK_EVERY:
            return
        self.walked += 1
        for p in graph_leaves(tensors):
            self._leaves.add(id(p))
            if isinstance(p, torch.nn.Parameter) and p.requires_grad and id(p) not in self._reached:
                self._reached[id(p)] = (weakref.ref(p), p._version)

    def _optimizers(self) -> list[Any]:
        mon = self.monitor
        opts = [o for o in [mon.optimizer, *mon.adopted] if o is not None]
        for r in self._seen_opts:
            o = r()
            if o is not None and not any(o is k for k in opts):
                opts.append(o)
        return opts

    def _walk(self, final: bool) -> tuple[list, list]:
        """The model's modules and parameters, walked again every REWALK steps and for the final diagnosis
        (a model whose layers change in the middle of a run is seen within REWALK steps, and at the end).
        What is frozen and what the optimizers hold is read fresh at every diagnosis."""
        count = self.monitor.count
        if final or self._structure is None or count - self._structure[0] >= REWALK:
            model = self.monitor.model
            self._structure = (count, list(model.named_modules()), list(model.named_parameters()))
        return self._structure[1], self._structure[2]

    def evidence(self, final: bool = False) -> WiringEvidence:
        """The summary `check_wiring` reads (computed at each diagnosis: groups can be added later)."""
        modules, named = self._walk(final)
        names = {id(p): n for n, p in named}
        order = {id(p): i for i, (_, p) in enumerate(named)}
        opts = self._optimizers()
        held = {id(p) for o in opts for g in o.param_groups for p in g["params"]}
        reached = {i: r() for i, (r, _) in self._reached.items()}
        hidden = {id(p) for u in self.unregistered for p in u.params}
        ev = WiringEvidence(held=len(held), backwards=self.walked, steps=self.monitor.count)
        ev.freeze = self._freeze.evidence(modules)
        for u in self.unregistered:
            used = any(id(p) in reached for p in u.params)
            ev.unregistered.append(
                (dataclasses.replace(u, params=[]), used, any(id(p) in held for p in u.params))
            )
        missing = [
            p
            for i, p in reached.items()
            if p is not None
            and i not in held
            and i not in hidden
            and p.requires_grad
            and p._version == self._reached[i][1]
        ]
        missing.sort(key=lambda p: order.get(id(p), len(order)))  # the model's order: first layers first
        ev.missing = [names[id(p)] for p in missing if id(p) in names]
        ev.missing_outside = [tuple(p.shape) for p in missing if id(p) not in names]
        ev.outside_untrained = any(uniform_init(p) for p in missing if id(p) not in names)
        held_order = [order[i] for i in held if i in order]
        ev.missing_inside = bool(
            ev.missing
            and not ev.missing_outside
            and held_order
            and max(order[id(p)] for p in missing) < max(held_order)
        )
        given = self.monitor.optimizer
        stale_from = (
            [given]
            if given is not None
            else [o for o in opts if not any(id(p) in names for g in o.param_groups for p in g["params"])]
        )
        ev.stale = [
            tuple(p.shape)
            for o in stale_from
            for g in o.param_groups
            for p in g["params"]
            if id(p) not in names and id(p) not in self._leaves and id(p) not in hidden and p.requires_grad
        ]
        return ev


def safe_evidence(tracker: WiringTracker, errors: list[str], final: bool = False) -> WiringEvidence | None:
    """The tracker's evidence, or None with the failure recorded (the other checks still run)."""
    try:
        return tracker.evidence(final)
    except Exception as e:
        record_error(errors, "wiring evidence", e)
        return None


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    shown = ", ".join(str(tuple(s)) for s in shapes[:4]) + (", ..." if len(shapes) > 4 else "")
    return f"shapes {shown}"


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def check_wiring(run: RunData) -> Iterator[Finding]:
    """unregistered-submodule (see `_core/wiring.py`), optimizer-stale-params, params-not-in-optimizer.

    optimizer-stale-params (error, conclusive from the first optimizer step): the watched optimizer holds
    tensors that are not the model's and that no backward pass reached, while model parameters the
    backward pass reaches are held by no optimizer. params-not-in-optimizer (warning, after >= 2 optimizer
    steps, or 1 at the end, so that a second optimizer has been seen stepping): parameters reached by the
    backward pass, held by no optimizer seen, whose value never changed, while the optimizers hold others
    (tensors outside the model only when one is a weight still at its default init: a layer never trained;
    else a pretrained loss network, info);
    a part left out before the last layer the optimizer holds (a backbone frozen by omission) is info: the
    bug reports leave out the head, or tensors outside the model."""
    ev = run.wiring
    if ev is None:
        return
    for u, used, in_opt in ev.unregistered:
        if used or run.final:
            yield unregistered_finding(u, used, in_opt if ev.held else None)
    if not ev.steps or not ev.held:
        return
    if ev.stale and ev.missing:
        yield _f(
            "optimizer-stale-params",
            "error",
            f"the optimizer holds {len(ev.stale)} tensor(s) ({_shapes(ev.stale)}) that are not parameters of "
            f"the model and that no backward pass reaches, while {len(ev.missing)} of the model's parameters "
            f"({_names(ev.missing)}) get gradients that no optimizer applies: optimizer.step() updates tensors "
            "the model no longer uses, and the model never changes",
            "build the optimizer after the model (or the replaced layer) it trains: re-create it, e.g. "
            "optimizer = torch.optim.Adam(model.parameters(), ...), right after model = ... or model.fc = ...",
            "optimizer",
            stale=len(ev.stale),
            params=ev.missing[:50],
        )
        return
    if not (ev.missing or ev.missing_outside) or not (ev.steps >= 2 or run.final):
        return
    parts = []
    if ev.missing:
        parts.append(f"{len(ev.missing)} of the model's parameters ({_names(ev.missing)})")
    if ev.missing_outside:
        parts.append(
            f"{len(ev.missing_outside)} tensor(s) outside the model ({_shapes(ev.missing_outside)}: a loss "
            "module's or another network's)"
        )
    what = " and ".join(parts)
    if ev.missing_inside:
        yield _f(
            "params-not-in-optimizer",
            "info",
            f"{what} get gradients in every backward pass but no optimizer holds them: they are frozen by "
            "being left out of the optimizer, and their gradients are computed for nothing",
            "if they are frozen on purpose, set p.requires_grad_(False) on them to skip that work; else add "
            "them to the optimizer",
            ev.missing[0].rsplit(".", 1)[0],
            params=ev.missing[:50],
        )
        return
    if not ev.missing and not ev.outside_untrained:
        # only pretrained-looking tensors outside the model: most often a loss network (VGG features for a
        # perceptual loss) left with requires_grad=True, frozen in effect: advice
        yield _f(
            "params-not-in-optimizer",
            "info",
            f"{what} get gradients in every backward pass but no optimizer holds them; none is a layer at its "
            "initialization, so they look like a pretrained network used in the loss",
            "if it is frozen on purpose (a perceptual-loss network), set requires_grad_(False) on it to skip "
            "that work; if they should train, add them to the optimizer",
            "loss",
            params=[],
            outside=len(ev.missing_outside),
        )
        return
    owner = ev.missing[0].rsplit(".", 1)[0] if ev.missing else "loss"
    add = (
        f"optimizer.add_param_group({{'params': model.{owner}.parameters()}})"
        if ev.missing
        else "torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), ...)"
    )
    yield _f(
        "params-not-in-optimizer",
        "warning",
        f"{what} get gradients in the backward pass but no optimizer holds them, so they never change "
        f"({ev.steps} optimizer steps); the optimizer holds {ev.held} other tensors",
        f"give them to the optimizer: {add}, or append their parameter group to the list the optimizer is "
        "built from",
        owner,
        params=ev.missing[:50],
        outside=len(ev.missing_outside),
    )
