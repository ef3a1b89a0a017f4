"""When the monitor samples, and what a sampled forward takes: layer statistics on the first EARLY steps (for
the diagnosis of a short run) and every `every`-th; every layer's activation numbers and histograms on the
first and every `every`-th, the activation modules' alone (dead and saturated units: what the diagnosis
reads) on the other early ones. The leaves carry the monitor's forward hook only while it samples."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._core.hooks import HookSet
from .._core.tensors import first_tensor, is_float
from .activations import ForwardProbe, PendingSample, module_kind, summarize
from .records import LayerSample, record_error, safe

EARLY = 5  # steps sampled from the start, so that a run of a few dozen steps is diagnosed


def sampled(step: int, every: int) -> bool:
    """Whether layer statistics are taken at `step`: the first EARLY steps, then every `every`-th."""
    return step <= EARLY or step % every == 0


def histogrammed(step: int, every: int) -> bool:
    """Whether a sampled step takes every layer's activation numbers and histograms: the first and every
    `every`-th. The other early samples serve the diagnosis of a short run, which reads only the activation
    modules' numbers; the rest are only shown, and cost as much again (a small BERT: 53 leaves, 7 ms)."""
    return step == 1 or step % every == 0


class LeafSampling:
    """Mixin of `StepMonitor`: the sampling schedule of the step under way and the leaf hooks that take its
    activation numbers (reads and sets the monitor's fields below)."""

    count: int
    every: int
    histograms: bool
    probe: ForwardProbe
    sample_queue: list[PendingSample]
    layer_order: list[str]
    internal_errors: list[str]
    _sampling: bool
    _hookset: HookSet | None
    _leaf_handles: dict[nn.Module, Any]  # leaf -> its hook's handle, paused while not sampling
    _hooked: tuple[nn.Module, ...]
    _leaves: dict[nn.Module, str]
    _kinds: dict[nn.Module, tuple[str, float | None]]
    _order_seen: set[str]
    _pending_acts: dict[str, LayerSample]
    _leaf_begun: bool  # the probe's mode was begun by a leaf (`_forward_hook`), not by the model's forward
    _root_step: int  # the step whose training forward last went through the model's own forward
    on_leaf_forward: list  # callables(leaf) at the first leaf of a forward that bypasses the model's own
    model: nn.Module

    @property
    def sampling(self) -> bool:
        """Whether the next forward and step are sampled (activations summarized, values read)."""
        return self._sampling

    @sampling.setter
    def sampling(self, on: bool) -> None:
        self._sampling = on
        if self._hookset is not None and (on or self._hooked):
            self._leaf_hooks(on)

    def _leaf_hooks(self, on: bool) -> None:
        """Hook the leaves only while sampling: a module with a forward hook takes the slow call path (~1 us,
        several cold, per module per forward: 1.4% of a BERT's training step with 53 leaves). On the early
        steps that take only the activations' numbers (`full_now`), only the activation modules, once the
        forward is known to call no activation function (whose names come from the leaf before it). A leaf's
        hook is registered once, then paused and resumed (`HookSet.pause`)."""
        hooks = self._hookset
        assert hooks is not None  # attached (not compiled); the setter checks
        if not on:
            want: tuple[nn.Module, ...] = ()
        elif self.full_now or not self.probe.retired:
            want = tuple(self._leaves)
        else:
            want = tuple(m for m in self._leaves if self._kind(m)[0])
        if want == self._hooked:
            return
        handles = self._leaf_handles
        keep = set(want)
        hooks.pause([h for m, h in handles.items() if m not in keep])
        hooks.resume([handles[m] for m in want if m in handles])
        for m in want:
            if m not in handles:
                handles[m] = hooks.forward(m, self._forward_hook)
        self._hooked = want

    def _kind(self, module: nn.Module) -> tuple[str, float | None]:
        return self._kinds.get(module) or self._kinds.setdefault(module, module_kind(module))

    @property
    def full_now(self) -> bool:
        """Whether the step under way takes every layer's numbers (`histogrammed`: the first and every
        `every`-th); the other early samples take what the diagnosis reads, the activation modules' (dead and
        saturated units) and every layer's weight, update and gradient norms."""
        return histogrammed(self.count + 1, self.every)

    @property
    def histogram_now(self) -> bool:
        """Whether the step under way keeps histograms (`histogrammed`)."""
        return self.histograms and self.full_now

    @safe
    def _forward_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if not self.sampling or not torch.is_grad_enabled():
            return
        if self._root_step != self.count + 1 and not self._leaf_begun:
            # a step whose forward does not go through the model's own: a LightningModule whose training_step
            # calls `self.net(x)`. What the model's forward hooks would begin begins at its first leaf: the
            # detached-term window (first: a mode begun after it sits above it and comes off first, at the
            # loss), and the activation functions watched from here to the loss
            for fn in self.on_leaf_forward:
                fn(module)
            if self.probe.mode is None and not self.probe.retired:
                self.probe.begin(self.model)
                self._leaf_begun = self.probe.mode is not None
        name = self._leaves[module]
        if name not in self._order_seen:
            self._order_seen.add(name)
            self.layer_order.append(name)
        y = first_tensor(out)
        if not is_float(y) or y.numel() == 0:
            return
        kind, limit = self._kind(module)
        if not kind and not self.full_now:  # an early sample: the diagnosis reads no other layer's numbers
            self.probe.leaf(name, y, None)
            return
        with torch._C.DisableTorchFunction():  # our own reductions need not pass through the activation mode
            s = summarize(
                self.count + 1,
                name,
                kind,
                y,
                first_tensor(args),
                self.histogram_now,
                self.sample_queue,
                limit,
            )
        s.type = type(module).__name__
        self.probe.leaf(name, y, s)
        self._pending_acts[name] = s

    def end_leaf_forward(self, output: Any = None) -> None:
        """A forward begun at a leaf (`_forward_hook`) is over: at its loss (`output`: the loss's input, the
        model's output), else at the backward or the optimizer step."""
        if not self._leaf_begun:
            return
        self._leaf_begun = False
        try:
            self.probe.end(output)
        except Exception as e:
            record_error(self.internal_errors, "leaf forward", e)
