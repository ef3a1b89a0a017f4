"""The per-layer tables a `StepMonitor` gives back (`layer_stats`, histograms per layer, layers in forward
order), and the replay that names where a NaN/Inf first appeared: what the monitor shows, apart from
how it collects."""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError
from .._core.hooks import HookSet, preserved
from .._core.tensors import first_tensor, is_float
from .histqueue import HistogramQueue
from .pending import PendingReads
from .records import LayerSample, StepRecord, record_error
from .rundata import LR_COLLAPSE
from .schedulers import describe_scheduler, find_schedulers


class MonitorTables:
    """Mixin of `StepMonitor`: its tables and the non-finite replay (reads `samples`, `params`, ...)."""

    samples: dict[int, list[LayerSample]]
    records: list[StepRecord]
    pending: PendingReads
    params: list[torch.Tensor]
    _grad_norms: list[float] | None
    _param_names: dict[torch.Tensor, str]
    leaked_params: dict[str, int]
    nonfinite_events: list[dict[str, Any]]
    internal_errors: list[str]
    layer_order: list[str]
    model: nn.Module
    _schedulers: list[weakref.ref] | None
    stepping: Any  # the optimizer whose steps are the monitor's (StepMonitor.stepping)
    hists: HistogramQueue

    @property
    def steps(self) -> list[StepRecord]:
        """Every step's record, with its loss and gradient norm read (see `read`)."""
        self.read()
        return self.records

    def read(self) -> list[StepRecord]:
        """Read the queued per-step values from the device in one batch (pending.py) and record the first
        non-finite loss (its forward replayed on that step's input) or gradient; the records read now."""
        start = self.pending.read_count
        found = self.pending.read(len(self.params))
        for i in self.pending.leaked:  # parameters whose .grad carried the previous step's, per step
            n = self._param_names.get(self.params[i], f"param{i}")
            self.leaked_params[n] = self.leaked_params.get(n, 0) + 1
        self.pending.leaked = []
        if not self.nonfinite_events:
            u = found.loss_step
            if u is not None:
                self._record_nonfinite_loss(u.rec.step, u.rec.loss, u.inputs, u.late)
            elif found.grad_step is not None and found.grad_norms is not None:
                self._grad_norms = found.grad_norms
                self._record_nonfinite_grads(found.grad_step.rec.step, found.grad_norms)
        return self.records[start : self.pending.read_count]

    def layer_stats(self, last: bool = False):
        """One row per layer per sampled step (activation mean/std/zero and dead fraction, saturation,
        gradient norm, weight norm, update/weight ratio). `last=True`: only the latest sample."""
        import pandas as pd

        samples = self.samples
        keys = sorted(samples)[-1:] if last else sorted(samples)
        rows = []
        for k in keys:
            for s in samples[k]:
                d = asdict(s)
                d.pop("act_hist"), d.pop("grad_hist")
                rows.append(d)
        cols = [f for f in LayerSample.__dataclass_fields__ if f not in ("act_hist", "grad_hist")]
        return pd.DataFrame(rows, columns=cols)

    def histogram_series(
        self, layer: str, kind: str = "activation"
    ) -> list[tuple[int, float, float, list[int]]]:
        """(step, low, high, counts) of `layer`'s activations or gradients at each sampled step."""
        if kind not in ("activation", "gradient"):
            raise NbdebugError(f"kind must be 'activation' or 'gradient', got {kind!r}")
        attr = "act_hist" if kind == "activation" else "grad_hist"
        self.hists.resolve(layer, attr)  # the series asked for: the others wait until they are
        out = []
        for step in sorted(self.samples):
            for s in self.samples[step]:
                h = getattr(s, attr)
                if s.layer == layer and h is not None:
                    out.append((step, *h))
        return out

    def layers(self) -> list[str]:
        """Layers with statistics, in forward order."""
        seen: dict[str, None] = {}
        for step in sorted(self.samples):
            for s in self.samples[step]:
                seen.setdefault(s.layer)
        return list(seen)

    def _record_nonfinite_loss(self, step: int, value: float, inputs: tuple | None, late: bool) -> None:
        """`late`: read after the step's update (pending.py); when that update wrote NaN/Inf into the
        weights, a replay now cannot tell which layer produced the first one."""
        if inputs is not None and _nonfinite_input(inputs):
            where, phase = "input", "forward"
        elif late and any(not bool(torch.isfinite(p).all()) for p in self.params if is_float(p)):
            where, phase = None, "late"
        else:
            where, phase = self.replay_first_nonfinite(inputs)
        event = {"step": step, "what": "loss", "value": value, "where": where, "phase": phase}
        if phase == "outside" and inputs is not None:  # the name the root gives the child replayed
            child = inputs[2]
            event["through"] = next(
                (n for n, m in self.root.named_children() if m is child), type(child).__name__
            )
        self.nonfinite_events.append(event)

    def _record_nonfinite_grads(self, step: int, norms: list[float]) -> None:
        bad = {self._owner.get(self.params[i], "?") for i, v in enumerate(norms) if not math.isfinite(v)}
        order = [n for n in self.layer_order if n in bad] or sorted(bad)
        # backward runs from the output: the first non-finite gradient is in the last such layer
        where = order[-1] if order else None
        self.nonfinite_events.append(
            {"step": step, "what": "gradient", "where": where, "phase": "backward", "layers": order}
        )

    def replay_first_nonfinite(self, inputs: tuple | None) -> tuple[str | None, str]:
        """Re-run the step's forward on its input (no grad, state and RNG restored) to name the first layer
        whose output is not finite; ("input", ...) when the batch itself is, ("loss", ...) when none is,
        (None, "unreplayed") without an input (the forward bypassed the model and its children, or the input
        was let go). `inputs`: (args, kwargs) of the model, or (args, kwargs, submodule) of the child the
        step's forward called first: a replay of that child alone that finds every output finite gives
        (None, "outside"), since the rest of the step's forward was not replayed."""
        if inputs is None:
            return None, "unreplayed"
        args, kwargs = inputs[0], inputs[1]
        target = inputs[2] if len(inputs) > 2 else self.model
        if _nonfinite_input(inputs):
            return "input", "forward"
        found: list[str] = []

        def hook(module: nn.Module, a: tuple, out: Any) -> None:
            y = first_tensor(out)
            if not found and is_float(y) and not bool(torch.isfinite(y).all()):
                found.append(self._leaves.get(module, type(module).__name__))

        try:
            with HookSet() as hooks, preserved(self.model), torch.no_grad():
                for m in self._leaves:
                    hooks.forward(m, hook)
                target(*args, **kwargs)
        except Exception as e:
            record_error(self.internal_errors, "replay", e)
        if found:
            return found[0], "forward"
        return ("loss function", "loss") if target is self.model else (None, "outside")

    # -- learning-rate schedulers ----------------------------------------------------------------------
    def schedulers(self) -> list[dict[str, Any]]:
        """The LR schedulers of the stepping optimizer (name, how often stepped, their settings), found only
        once its learning rate fell below LR_COLLAPSE of its maximum (the search walks the gc referrers)."""
        opt = self.stepping
        if opt is None or not self.records:
            return []
        if self._schedulers is None:
            lrs = [r.lr for r in self.records if math.isfinite(r.lr)]
            if not lrs or not max(lrs) > 0 or lrs[-1] >= LR_COLLAPSE * max(lrs):
                return []
            try:
                self._schedulers = [weakref.ref(s) for s in find_schedulers(opt)]
            except Exception as e:
                record_error(self.internal_errors, "schedulers", e)
                self._schedulers = []
        return [describe_scheduler(s) for s in (r() for r in self._schedulers) if s is not None]


def _nonfinite_input(inputs: tuple) -> bool:
    args, kwargs = inputs[0], inputs[1]
    x = first_tensor(args) if args else first_tensor(kwargs)
    return is_float(x) and not bool(torch.isfinite(x).all())
