"""The one place that attaches hooks and restores model state.

nbdebug must never change the user's model behind their back. Every feature attaches its hooks
through `HookSet` and wraps its work in `preserved(...)`, so that on success, on an exception and on
KeyboardInterrupt alike the model comes back with the same hooks, train/eval mode (per submodule),
`requires_grad` flags, buffers (BatchNorm running statistics), the tensors a module keeps as plain
attributes (what a pruning or legacy weight-norm pre-hook recomputes), weights a layer writes in place
(`nn.Embedding(max_norm=...)`), and, when asked, all weights, gradients, optimizer state and RNG state.
`MetaWeights` runs a block with every parameter and buffer swapped for a meta tensor.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin
from torch.utils.hooks import RemovableHandle


class HookSet:
    """Collects hook handles and removes every one of them on exit, whatever happened."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []
        self._paused: dict[int, Callable] = {}  # handle id -> its hook, taken out of its dictionary

    def add(self, handle: RemovableHandle) -> RemovableHandle:
        self._handles.append(handle)
        return handle

    def forward_pre(self, module: nn.Module, fn: Callable, **kw: Any) -> RemovableHandle:
        return self.add(module.register_forward_pre_hook(fn, **kw))

    def forward(self, module: nn.Module, fn: Callable, **kw: Any) -> RemovableHandle:
        return self.add(module.register_forward_hook(fn, **kw))

    def tensor(self, tensor: torch.Tensor, fn: Callable) -> RemovableHandle:
        return self.add(tensor.register_hook(fn))

    def drop(self, handles: list[RemovableHandle]) -> None:
        """Remove these handles now: hooks attached only for a while (until then `remove` covers them)."""
        gone = {id(h) for h in handles}
        for h in handles:
            self._paused.pop(h.id, None)
            h.remove()
        self._handles = [h for h in self._handles if id(h) not in gone]

    def pause(self, handles: Iterable[RemovableHandle]) -> None:
        """Take these hooks out of their module for a while (`resume` puts them back, `remove` still removes
        them): a module with no hook takes PyTorch's fast call path, and taking one out and putting it back
        costs a dictionary operation where removing and registering it again costs ~6 us a module."""
        for h in handles:
            hooks = h.hooks_dict_ref()
            if hooks is not None and h.id in hooks:
                self._paused[h.id] = hooks.pop(h.id)

    def resume(self, handles: Iterable[RemovableHandle]) -> None:
        """Put paused hooks back (last in their module's order, as a hook registered now would be)."""
        for h in handles:
            hook = self._paused.pop(h.id, None)
            hooks = h.hooks_dict_ref()
            if hook is not None and hooks is not None:
                hooks[h.id] = hook

    def remove(self) -> None:
        self._paused.clear()
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
    if t is None or t.device.type == "meta" or isinstance(t, UninitializedTensorMixin):
        return t
    return t.detach().clone()


_SLOTS = frozenset(("_parameters", "_buffers", "_modules"))  # the dicts every module has
# types of module attributes that never hold a tensor (dict: only the slots above, counted apart)
_PLAIN = frozenset({bool, int, float, str, bytes, tuple, set, type(None), dict, OrderedDict, torch.Size})
TensorAttrs = list[tuple[nn.Module, list[tuple[str, Any, Any]]]]


def tensor_attributes(modules: Iterable[nn.Module]) -> TensorAttrs:
    """The tensors each module keeps in its `__dict__` outside its parameter and buffer slots, by
    reference (a pruning or legacy weight/spectral-norm pre-hook sets a new `weight` on every forward
    pass), and the items of each list or dict of tensors it keeps there (RNNs' `_flat_weights`)."""
    out: TensorAttrs = []
    for m in modules:
        d = m.__dict__
        types = list(map(type, d.values()))  # C-level: most modules hold nothing of interest
        kinds = set(types)
        kinds.difference_update(_PLAIN)
        if not kinds and types.count(dict) <= len(_SLOTS):
            continue
        found = None
        for k, v in d.items():
            t = type(v)
            if t is list or t is dict:
                if not v or k in _SLOTS:
                    continue
                if any(isinstance(x, torch.Tensor) for x in (v if t is list else v.values())):
                    (found := found or []).append((k, v, list(v) if t is list else dict(v)))
            elif isinstance(v, torch.Tensor):
                (found := found or []).append((k, v, None))
        if found:
            out.append((m, found))
    return out


def restore_tensor_attributes(saved: TensorAttrs) -> None:
    """Put back what `tensor_attributes` saved: the same objects, list and dict contents in place."""
    for m, items in saved:
        d = m.__dict__
        for k, v, contents in items:
            if contents is None:
                if d.get(k) is not v:
                    d[k] = v
            elif d.get(k) is not v:
                d[k] = v
                _refill(v, contents)
            else:
                _refill(v, contents)


def _refill(container: Any, contents: Any) -> None:
    if isinstance(container, list):
        if len(container) != len(contents) or any(a is not b for a, b in zip(container, contents)):
            container[:] = contents
    elif container.keys() != contents.keys() or any(container[k] is not v for k, v in contents.items()):
        container.clear()
        container.update(contents)


def _writes_own_weights(m: nn.Module) -> bool:
    """Layers that write their weight in place during forward: an embedding with `max_norm` renormalises
    the rows it looks up (torch.embedding_renorm_)."""
    return isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.max_norm is not None


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
    attributes: TensorAttrs = field(default_factory=list)
    written: dict[nn.Parameter, tuple[int, torch.Tensor]] = field(default_factory=dict)
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
        written = {}
        if not weights:  # copy only the weights a layer is known to write in place, with their version
            for m in modules:
                w = m._parameters.get("weight") if _writes_own_weights(m) else None
                if w is not None and not isinstance(w, UninitializedTensorMixin):
                    written[w] = (w._version, _clone(w))
        return cls(
            model=model,
            modes={m: m.training for m in modules},
            requires_grad={p: p.requires_grad for p in params},
            buffers=buffers,
            attributes=tensor_attributes(modules),
            written=written,
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
                current = m._buffers[name] if name in m._buffers else None  # (a ScriptModule's has no .get)
                if saved is current:
                    continue  # not copied (see _may_write_buffers) and not replaced
                if saved is None or current is None or current.device.type == "meta":
                    m._buffers[name] = saved if current is None else current
                elif current.shape == saved.shape and current.dtype == saved.dtype:
                    current.copy_(saved)
                else:
                    m._buffers[name] = saved
            for p, (version, saved) in self.written.items():
                if p._version != version and saved is not None and p.device.type != "meta":
                    p.data.copy_(saved)
            restore_tensor_attributes(self.attributes)
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


class MetaWeights:
    """`with MetaWeights(model):` runs the block with every parameter and buffer slot of every module
    holding a meta tensor of the same shape, dtype and `requires_grad` (nothing allocated, nothing
    computed), and puts the same objects back on exit, whatever happened.

    Each unique (module, name) slot is swapped once, with `setattr` (so RNNs' `_flat_weights` follow),
    and a tensor reachable from several slots gets one meta twin, so tied weights stay tied; a module
    reachable by two paths is one module. (`torch.func.functional_call` swaps by path, and left a shared
    module's weights on meta.) The tensors modules keep as plain attributes are put back too: a pruning
    pre-hook sets `weight` from the meta tensors. Uninitialized (lazy) parameters are left alone until
    they are materialized: call `swap(module)` after that (a forward pre-hook of the lazy module).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._twins: dict[int, torch.Tensor] = {}
        self._slots: list[tuple[nn.Module, str, torch.Tensor]] = []
        self._attributes: TensorAttrs = []

    def swap(self, module: nn.Module) -> None:
        """Swap the module's own parameters and buffers (not its children's) that are not on meta yet."""
        for table, is_param in ((module._parameters, True), (module._buffers, False)):
            for name, t in list(table.items()):
                if t is None or t.device.type == "meta" or isinstance(t, UninitializedTensorMixin):
                    continue
                twin = self._twins.get(id(t))
                if twin is None:
                    twin = _meta_twin(t, is_param)
                    self._twins[id(t)] = twin
                self._slots.append((module, name, t))
                setattr(module, name, twin)

    def __enter__(self) -> MetaWeights:
        modules = list({id(m): m for m in self.model.modules()}.values())
        self._attributes = tensor_attributes(modules)
        try:
            for m in modules:
                self.swap(m)
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        while self._slots:
            module, name, t = self._slots.pop()
            setattr(module, name, t)
        self._twins.clear()
        restore_tensor_attributes(self._attributes)


def _meta_twin(t: torch.Tensor, is_param: bool) -> torch.Tensor:
    try:
        twin = torch.empty_like(t, device="meta")
    except (RuntimeError, NotImplementedError):  # layouts empty_like cannot make on meta
        twin = torch.empty(t.shape, dtype=t.dtype, device="meta")
    if is_param:
        return nn.Parameter(twin, requires_grad=t.requires_grad)
    return twin


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
