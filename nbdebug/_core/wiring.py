"""Layers a model holds but PyTorch does not see: a Module attribute that is a plain list, tuple or dict of
Modules or Parameters. `nn.Module.__setattr__` registers a Module or Parameter assigned directly, never
one inside a Python container, so those layers are missing from `model.parameters()` (the optimizer built
from it never updates them), from `model.to(device)` and from `state_dict()` (pytorch/pytorch#715, #1053).
`nbdebug.check` and `nbdebug.watch` read it from the model's structure; what is registered elsewhere too
(`self.blocks = [self.a, self.b]` beside `self.a`, `self.b`) is fine and never reported."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .findings import Finding

_MODULE_INTERNALS = frozenset(vars(nn.Module()))  # _parameters, _modules, _forward_hooks, ...
_DEPTH = 3  # nesting of containers looked into: [[nn.Linear, act], ...] (the #715 report) is depth 2


@dataclass
class Unregistered:
    """One container attribute holding trainable parameters that `model.parameters()` does not have."""

    attr: str  # its path from the model: "hids", "encoder.convs"
    container: str  # "list", "tuple" or "dict"
    modules: int  # Modules found in it
    n_params: int  # trainable parameter tensors reached through it and registered nowhere in the model
    numel: int  # their number of values
    params: list[nn.Parameter] = field(
        default_factory=list, repr=False
    )  # the tensors (not kept in summaries)

    @property
    def wrapper(self) -> str:
        """The container PyTorch registers: nn.ModuleDict for a dict of modules, nn.ParameterList for a
        list of bare Parameters, nn.ModuleList otherwise."""
        if self.container == "dict":
            return "nn.ModuleDict" if self.modules else "nn.ParameterDict"
        return "nn.ModuleList" if self.modules else "nn.ParameterList"


def _items(value: Any, depth: int) -> Iterator[Any]:
    """Modules and Parameters inside a list/tuple/dict, looking `depth` containers deep."""
    if depth <= 0:
        return
    elems: Iterable[Any] = value.values() if isinstance(value, dict) else value
    for v in elems:
        if isinstance(v, (nn.Module, nn.Parameter)):
            yield v
        elif isinstance(v, (list, tuple, dict)):
            yield from _items(v, depth - 1)


def find_unregistered(model: nn.Module) -> list[Unregistered]:
    """Every container attribute of `model` or its submodules that holds trainable Parameters (directly or
    in its Modules) missing from `model.parameters()`; frozen ones, plain tensors and anything registered
    elsewhere in the model are left out."""
    registered = {id(p) for p in model.parameters()}
    counted: set[int] = set()
    out: list[Unregistered] = []
    for mname, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr in _MODULE_INTERNALS or not isinstance(value, (list, tuple, dict)):
                continue
            if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
                continue  # a cache keyed by objects, not a container of named layers
            found = list(_items(value, _DEPTH))
            params: list[nn.Parameter] = []
            for obj in found:
                for p in obj.parameters() if isinstance(obj, nn.Module) else (obj,):
                    if p.requires_grad and id(p) not in registered and id(p) not in counted:
                        counted.add(id(p))
                        params.append(p)
            if params:
                kind = "dict" if isinstance(value, dict) else type(value).__name__
                kind = kind if kind in ("list", "tuple", "dict") else "list"
                mods = sum(isinstance(o, nn.Module) for o in found)
                path = f"{mname}.{attr}" if mname else attr
                out.append(
                    Unregistered(path, kind, mods, len(params), sum(p.numel() for p in params), params)
                )
    return out


def unregistered_finding(u: Unregistered, used: bool, in_optimizer: bool | None) -> Finding:
    """The finding for `u`: a warning when its parameters took part in a backward pass (`used`) and no
    optimizer holds them (`in_optimizer` False, or None when no optimizer is known: one built from
    model.parameters() cannot); info when the optimizer was given them by hand (they train, but .to() and
    state_dict() still miss them) or when no backward pass reached them (a deliberately hidden module)."""
    what = f"{u.modules} module(s)" if u.modules else f"{u.n_params} Parameter(s)"
    msg = (
        f"model.{u.attr} is a plain Python {u.container} holding {what} with {u.n_params} trainable "
        f"parameter tensor(s) ({u.numel:,} values) that are not in model.parameters()"
    )
    if used and not in_optimizer:
        severity = "warning"
        msg += (
            ": they take part in the forward pass and get gradients, but an optimizer built from "
            "model.parameters() never updates them (nor does model.to(device) move them or state_dict() "
            "save them)"
        )
    else:
        severity = "info"
        msg += (
            ": the optimizer was given them, so they train, but model.to(device) does not move them and "
            "state_dict() does not save them"
            if in_optimizer
            else ": model.to(device) does not move them, state_dict() does not save them, and an optimizer "
            "built from model.parameters() would not train them"
        )
    hint = f"register them: self.{u.attr.rsplit('.', 1)[-1]} = {u.wrapper}(...) in __init__"
    if u.container == "list" and u.modules:
        hint += " (nn.Sequential(*layers) if they run one after another)"
    return Finding(
        "unregistered-submodule",
        severity,  # type: ignore[arg-type]
        msg,
        hint,
        f"model.{u.attr}",
        {"attr": u.attr, "container": u.container, "params": u.n_params, "numel": u.numel, "used": used},
    )


def graph_leaves(roots: Iterable[torch.Tensor], limit: int = 200_000) -> list[torch.Tensor]:
    """The leaf tensors a backward pass from `roots` accumulates gradients into (its AccumulateGrad nodes),
    visiting at most `limit` graph nodes."""
    seen: set[Any] = set()
    stack = [t.grad_fn for t in roots if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    leaves: list[torch.Tensor] = []
    while stack and len(seen) < limit:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if isinstance(var, torch.Tensor):
            leaves.append(var)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return leaves


@contextlib.contextmanager
def hidden_grads(model: nn.Module) -> Iterator[list[Unregistered]]:
    """The unregistered containers of `model`, their parameters' .grad cleared for a one-shot pass (so
    that a gradient after it says the pass reached them) and put back afterwards: `preserved()` restores
    only what model.parameters() lists."""
    found = find_unregistered(model)
    saved = [(p, p.grad) for u in found for p in u.params]
    for p, _ in saved:
        p.grad = None
    try:
        yield found
    finally:
        for p, g in saved:
            p.grad = g


def one_pass_findings(found: list[Unregistered], optimizer: Any = None) -> list[Finding]:
    """`unregistered_finding` for each container after one backward pass (`nbdebug.check`)."""
    held = {id(p) for g in optimizer.param_groups for p in g["params"]} if optimizer is not None else set()
    return [
        unregistered_finding(
            u,
            used=any(p.grad is not None for p in u.params),
            in_optimizer=any(id(p) in held for p in u.params) if optimizer is not None else None,
        )
        for u in found
    ]
