"""The one place that attaches hooks and restores model state.

nbdebug must never change the user's model behind their back. Every feature attaches its hooks
through `HookSet` and wraps its work in `preserved(...)`, so that on success, on an exception and on
KeyboardInterrupt alike the model comes back with the same hooks, train/eval mode (per submodule),
`requires_grad` flags, buffers (BatchNorm running statistics), and, when asked, weights, gradients,
optimizer state and RNG state.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class HookSet:
    """Collects hook handles and removes every one of them on exit, whatever happened."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def add(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle

    def forward_pre(self, module: nn.Module, fn: Callable, **kw: Any) -> RemovableHandle:
        return self.add(module.register_forward_pre_hook(fn, **kw))

    def forward(self, module: nn.Module, fn: Callable, **kw: Any) -> RemovableHandle:
        return self.add(module.register_forward_hook(fn, **kw))

    def tensor(self, tensor: torch.Tensor, fn: Callable) -> RemovableHandle:
        return self.add(tensor.register_hook(fn))

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> HookSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def rng_state() -> dict[str, Any]:
    """Snapshot of every RNG a training step may consume (torch CPU and CUDA, random, numpy)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "random": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    if t is None or t.device.type == "meta":
        return t
    return t.detach().clone()


def _may_write_buffers(m: nn.Module) -> bool:
    """False only for layers known not to write their buffers in their current mode (a norm layer in eval
    mode reads its running statistics). Only valid for callers that never change the mode (trace)."""
    if isinstance(m, nn.modules.batchnorm._NormBase) and not m.training:
        return False
    return True


@dataclass
class ModelState:
    """What `preserved` saved; `restore()` puts it back in place (same Parameter objects)."""

    model: nn.Module
    modes: dict[nn.Module, bool]
    requires_grad: dict[nn.Parameter, bool]
    buffers: dict[tuple[nn.Module, str], torch.Tensor | None]
    weights: dict[nn.Parameter, torch.Tensor] | None = None
    grads: dict[nn.Parameter, torch.Tensor | None] | None = None
    optimizers: list[tuple[torch.optim.Optimizer, dict]] = field(default_factory=list)
    rng: dict[str, Any] | None = None

    @classmethod
    def capture(
        cls,
        model: nn.Module,
        *,
        weights: bool = False,
        grads: bool = False,
        optimizers: tuple[torch.optim.Optimizer, ...] = (),
        rng: bool = True,
        copy_eval_norm_buffers: bool = True,
    ) -> ModelState:
        modules = list(model.modules())
        params = list(model.parameters())
        buffers = {
            (m, name): _clone(b) if (copy_eval_norm_buffers or _may_write_buffers(m)) else b
            for m in modules
            for name, b in m._buffers.items()
        }
        return cls(
            model=model,
            modes={m: m.training for m in modules},
            requires_grad={p: p.requires_grad for p in params},
            buffers=buffers,
            weights={p: _clone(p) for p in params} if weights else None,
            grads={p: _clone(p.grad) for p in params} if grads else None,
            optimizers=[(o, copy.deepcopy(o.state_dict())) for o in optimizers],
            rng=rng_state() if rng else None,
        )

    def restore(self) -> None:
        with torch.no_grad():
            for m, mode in self.modes.items():
                m.training = mode
            for p, flag in self.requires_grad.items():
                p.requires_grad_(flag)
            for (m, name), saved in self.buffers.items():
                current = m._buffers.get(name)
                if saved is current:
                    continue  # not copied (see _may_write_buffers) and not replaced
                if saved is None or current is None or current.device.type == "meta":
                    m._buffers[name] = saved if current is None else current
                elif current.shape == saved.shape and current.dtype == saved.dtype:
                    current.copy_(saved)
                else:
                    m._buffers[name] = saved
            if self.weights is not None:
                for p, saved in self.weights.items():
                    if saved is not None and p.device.type != "meta":
                        p.data.copy_(saved)
            if self.grads is not None:
                for p, g in self.grads.items():
                    p.grad = g
            for opt, state in self.optimizers:
                opt.load_state_dict(state)
        if self.rng is not None:
            set_rng_state(self.rng)


@contextlib.contextmanager
def preserved(
    model: nn.Module,
    *,
    weights: bool = False,
    grads: bool = False,
    optimizers: tuple[torch.optim.Optimizer, ...] = (),
    rng: bool = True,
    copy_eval_norm_buffers: bool = True,
) -> Iterator[ModelState]:
    """Run a block and put the model back as it was, on success, exception and KeyboardInterrupt.

    Mode, requires_grad and buffers are always restored (a forward pass in train mode updates BatchNorm
    statistics); weights, gradients and optimizer state only when asked, since copying them costs memory.
    """
    state = ModelState.capture(
        model, weights=weights, grads=grads, optimizers=optimizers, rng=rng,
        copy_eval_norm_buffers=copy_eval_norm_buffers,
    )  # fmt: skip
    try:
        yield state
    finally:
        state.restore()


def hook_counts(model: nn.Module) -> dict[str, int]:
    """Number of hooks of each kind on every submodule; tests compare this before and after a call."""
    kinds = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_state_dict_hooks",
        "_load_state_dict_pre_hooks",
    )
    counts: dict[str, int] = {}
    for name, m in model.named_modules():
        for k in kinds:
            n = len(getattr(m, k, {}) or {})
            if n:
                counts[f"{name or '<root>'}.{k}"] = n
    for name, p in model.named_parameters():
        hooks = getattr(p, "_backward_hooks", None)
        if hooks:
            counts[f"{name}._backward_hooks"] = len(hooks)
    return counts
