"""Models the user calls through a wrapper: `torch.compile`, DistributedDataParallel, DataParallel.

`unwrap` gives the module whose layers and parameters the monitor names (`fc1.weight`, not
`module._orig_mod.fc1.weight`); the wrapper stays the module the user calls, where the monitor sees each
forward.

A compiled model runs its layers inside a graph that dynamo traced. Hooks on those layers would be traced
into it: every statistic that reads a number (`float(...)`) breaks the graph, every flag they read is a
guard that recompiles, and dynamo prints a warning for each. So on a compiled model the monitor hooks
only the outside of the compiled call, through functions dynamo is told to skip
(`torch.compiler.disable`): the forward pre-hook (batch size, input statistics, the replay input) and a
forward hook that, on sampled steps only, replays the step's forward eagerly on the original module with
the layer hooks attached, under `no_grad`, from the RNG state the real forward started from and with
modes, buffers and RNG restored afterwards (`preserved`). The training runs compiled and untouched; the
replay costs one forward pass without autograd every `every` steps. With `backend="eager"` the replayed
activations are the real ones bit for bit; with inductor they agree to float rounding (and dropout draws
its masks differently), which does not move a dead-unit or saturation fraction.
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import nn

from .._core.hooks import HookSet, preserved, rng_state, set_rng_state

WRAPPER_ATTRS = ("_orig_mod", "module")  # torch.compile's OptimizedModule; DDP and DataParallel


def _optimized_module_class() -> type | None:
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")  # imported by torch.compile, not by us
    cls = getattr(eval_frame, "OptimizedModule", None)
    return cls if isinstance(cls, type) else None


def is_wrapper(model: nn.Module) -> bool:
    """A compiled model's OptimizedModule, or a (Distributed)DataParallel: a module that only forwards."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return True
    cls = _optimized_module_class()
    return cls is not None and isinstance(model, cls)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside any wrappers (compile of DDP, DDP of a compiled model, ...)."""
    while is_wrapper(model):
        inner = next(
            getattr(model, a) for a in WRAPPER_ATTRS if isinstance(getattr(model, a, None), nn.Module)
        )
        model = inner
    return model


def unwrap_optimizer(optimizer: Any) -> Any:
    """The torch optimizer inside a framework's wrapper (accelerate's AcceleratedOptimizer, Lightning's
    LightningOptimizer: an `.optimizer` attribute), whose step hooks fire when the wrapper steps."""
    while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
        optimizer = optimizer.optimizer
    return optimizer


def compiled(model: nn.Module) -> str | None:
    """'wrapper' for `torch.compile(model)` (somewhere in the wrapper chain), 'in-place' for
    `model.compile()`, else None."""
    cls = _optimized_module_class()
    m = model
    while True:
        if cls is not None and isinstance(m, cls):
            return "wrapper"
        if getattr(m, "_compiled_call_impl", None) is not None:
            return "in-place"
        if not is_wrapper(m):
            return None
        m = next(getattr(m, a) for a in WRAPPER_ATTRS if isinstance(getattr(m, a, None), nn.Module))


class CompiledHooks:
    """The monitor's hooks for a compiled model (see the module docstring)."""

    def __init__(self, monitor: Any, kind: str) -> None:
        self.monitor = monitor
        self.kind = kind
        self._rng: dict | None = None
        self._replaying = False
        self.replays = 0

    def attach(self, hooks: HookSet) -> None:
        root = self.monitor.root
        hooks.forward_pre(root, torch.compiler.disable(self._pre), with_kwargs=True)
        hooks.forward(root, torch.compiler.disable(self._post), with_kwargs=True)

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if self._replaying:
            return None
        self.monitor._root_pre_hook(module, args, kwargs)
        if self.monitor.sampling and torch.is_grad_enabled():
            self._rng = rng_state()
        return None

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, out: Any) -> None:
        if self._replaying or self._rng is None:
            return None
        rng, self._rng = self._rng, None
        m = self.monitor
        self._replaying = True
        try:
            with HookSet() as hooks, preserved(m.model), torch.no_grad():
                set_rng_state(rng)
                for leaf in m._leaves:
                    hooks.forward(leaf, self._leaf)
                if self.kind == "in-place":
                    m.model._call_impl(*args, **kwargs)  # the eager forward under model.compile()
                else:
                    m.model(*args, **kwargs)
            self.replays += 1
        except Exception as e:  # never break the user's training
            if len(m.internal_errors) < 100:
                m.internal_errors.append(f"compiled replay: {type(e).__name__}: {e}")
        finally:
            self._replaying = False
        return None

    def _leaf(self, module: nn.Module, args: tuple, out: Any) -> None:
        with torch.enable_grad():  # the layer statistics are taken on training passes (grad on)
            self.monitor._forward_hook(module, args, out)


def attach_compiled(monitor: Any, hooks: HookSet) -> bool:
    """Hook a compiled model from outside its graph; False (nothing attached) for a model not compiled."""
    kind = compiled(monitor.root)
    if kind is None:
        return False
    monitor.compiled_hooks = CompiledHooks(monitor, kind)
    monitor.compiled_hooks.attach(hooks)
    return True
