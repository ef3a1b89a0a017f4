"""What a sampled forward pass tells about each activation: the dead fraction of a ReLU, the saturated
fraction of a tanh/sigmoid, the mean, spread and histogram of every layer's output.

Activations are seen two ways. Leaf modules (`nn.ReLU`, `nn.Tanh`, ...) through forward hooks; the
activation *functions* a `forward` calls (`torch.relu(x)`, `torch.tanh(h)`, `F.sigmoid`, `x.relu()`),
which most hand-written models use, through a `TorchFunctionMode` that is active only during the forward
passes of sampled steps (a mode sees every torch call, ~1.2x the cost of a forward: on the first steps and
every `every`-th one only, it stays within the monitor's budget). A function called by an activation
module (nn.ReLU calls F.relu) is counted once, as the module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .._core.tensors import first_tensor, is_float, stack_floats
from .histqueue import hist_values
from .modes import take_off
from .records import LayerSample, record_error
from .summaries import spread_std, spread_sums, strided, unit_maxima

RELU_TYPES = (nn.ReLU, nn.ReLU6)
# sampled forwards that find no activation function before the mode is no longer used: a forward calls the
# same functions each time, and the mode costs about as much as the forward it watches (BERT: 8 ms a step)
RETIRE_AFTER = 1
# where each saturating activation's output is within 1% of its bounds (catalogue saturated-activation):
# |tanh| > 0.99 (tanh' < 0.02, Karpathy's makemore part 3), sigmoid within 0.01 of 0 or 1 (sigmoid' < 0.01),
# softsign beyond +-0.99; hardtanh's gradient is exactly 0 past its bounds (read per module)
SATURATION_LIMITS = {"tanh": math.atanh(0.99), "sigmoid": math.log(99.0), "softsign": 99.0, "hardtanh": 1.0}
_SATURATING_MODULES = (
    (nn.Tanh, "tanh"),
    (nn.Sigmoid, "sigmoid"),
    (nn.Softsign, "softsign"),
    (nn.Hardtanh, "hardtanh"),
)

FUNCTIONS: dict[Any, str] = {
    torch.relu: "relu",
    torch.relu_: "relu",
    F.relu: "relu",
    F.relu_: "relu",
    F.relu6: "relu",
    torch.Tensor.relu: "relu",
    torch.Tensor.relu_: "relu",
    torch.tanh: "tanh",
    torch.tanh_: "tanh",
    F.tanh: "tanh",
    torch.Tensor.tanh: "tanh",
    torch.Tensor.tanh_: "tanh",
    torch.sigmoid: "sigmoid",
    torch.sigmoid_: "sigmoid",
    F.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid",
    torch.Tensor.sigmoid_: "sigmoid",
}


def dead_rows(y: torch.Tensor) -> int:
    """How many examples (times positions) a unit's dead verdict was taken over."""
    if y.dim() < 2:
        return int(y.numel())
    return int(y.numel() // max(int(y.shape[1]), 1))


def saturated_fraction(
    kind: str, y: torch.Tensor, x: torch.Tensor | None, limit: float | None = None
) -> torch.Tensor:
    """Fraction of a saturating activation's units in its flat tails (a 0-dim tensor, read with the rest
    of the sample): on the input `x` (|x| > the kind's limit) or, when the input is gone (an in-place
    call), on the (subsampled) output `y`."""
    lim = SATURATION_LIMITS[kind] if limit is None else limit
    if is_float(x):
        return (strided(x).abs() > lim).mean(dtype=torch.float32)
    if kind == "sigmoid":
        edge = 1.0 / (1.0 + math.exp(lim))
        return ((y < edge) | (y > 1 - edge)).mean(dtype=torch.float32)
    edge = {"tanh": math.tanh(lim), "softsign": lim / (1 + lim)}.get(kind, lim)
    return (y.abs() >= edge).mean(dtype=torch.float32)


@dataclass
class PendingSample:
    """A layer's sample whose numbers are still tensors: read with every other layer's at the end of the
    sampled step (`read_samples`), one read to the host instead of four or five per layer."""

    sample: LayerSample
    # 0-dim: "sum", "s1", "s2" (the subsample's sum and `spread_sums`); a ReLU's "dead", "finite" (`unit_maxima`
    # over the whole output) and "nonzero" (in the subsample); "sat" (saturating kinds)
    values: dict[str, torch.Tensor]
    n: int  # values in the subsample the spread and fractions are taken over
    sub: torch.Tensor | None  # `hist_values` of the output to histogram, on histogram steps


def summarize(
    step: int,
    name: str,
    kind: str,
    y: torch.Tensor,
    x: torch.Tensor | None,
    histograms: bool,
    queue: list[PendingSample],
    limit: float | None = None,
) -> LayerSample:
    """One layer's output `y` (and, for saturating activations, its input `x`) as a `LayerSample`, its
    numbers queued in `queue` until `read_samples`. `kind`: "relu", a saturating kind of
    SATURATION_LIMITS ("tanh", ...; `limit` overrides its limit), or "".

    Every number is reduced here from a strided view of `y` (no copy: the view dies with this call, so the
    activation is free for the backward pass), but a ReLU's unit maxima, over all of it (a unit is dead only
    if it is zero for every example). A full pass over a layer's output just written costs ~4x the same pass
    warm (a sampled CNN step spent 1.4 ms summing its four large outputs in full); a NaN/Inf that reaches
    the loss is found by replaying the forward (`tables.replay_first_nonfinite`) either way. Only the
    histogram's values are copied, on histogram steps (binned when asked for: `histqueue`)."""
    y = y.detach() if y.requires_grad else y
    s = LayerSample(step=step, layer=name, type=kind)
    hist = hist_values(y) if histograms else None
    # a layer that is no activation has only numbers to show: taken from the histogram's copy when there is
    # one (4096 values just copied, not 16k strided ones of a cold tensor: a BERT's 53 layers 4.2 -> 2.9 ms)
    sub = hist if hist is not None and not kind else strided(y)
    values: dict[str, torch.Tensor] = {}
    values["sum"] = sub.sum()  # the mean, estimated (and a NaN/Inf among the subsample)
    if kind == "relu":  # one full pass: the unit maxima give the dead units and show a NaN/Inf anywhere
        values["dead"], values["finite"] = unit_maxima(y)
        values["nonzero"] = torch.count_nonzero(sub)
        s.rows = dead_rows(y)
    values["s1"], values["s2"] = spread_sums(sub, values["sum"], sub.numel())
    if kind in SATURATION_LIMITS:
        values["sat"] = saturated_fraction(kind, sub, x, limit)
    queue.append(PendingSample(s, values, sub.numel(), hist))
    return s


def read_samples(queue: list[PendingSample], keep: set[int]) -> list[tuple[LayerSample, torch.Tensor]]:
    """Fill in the queued samples whose id is in `keep` (the others were dropped: a function call inside
    an activation module is the module), with one read of all their numbers; their histogram values, to
    bin later, as (sample, values)."""
    pending = [p for p in queue if id(p.sample) in keep]
    if not pending:
        return []
    read = iter(stack_floats(v for p in pending for v in p.values.values()).tolist())
    for p in pending:
        got = {k: next(read) for k in p.values}
        s = p.sample
        s.act_nonfinite = not math.isfinite(got["sum"]) or not math.isfinite(got.get("finite", 0.0))
        s.act_mean = got["sum"] / max(p.n, 1)
        s.act_std = spread_std(got["s1"], got["s2"], p.n)
        if "nonzero" in got:
            s.act_zero_frac = 1.0 - got["nonzero"] / max(p.n, 1)
        s.dead_frac = got.get("dead", s.dead_frac)
        s.saturated_frac = got.get("sat", s.saturated_frac)
    return [(p.sample, p.sub) for p in pending if p.sub is not None]


def module_kind(module: nn.Module) -> tuple[str, float | None]:
    """(kind, saturation limit) of a leaf module: ("relu", None), ("tanh", None), ("hardtanh", its
    bound), or ("", None) for a module that is no activation."""
    if isinstance(module, RELU_TYPES):
        return "relu", None
    for cls, kind in _SATURATING_MODULES:
        if isinstance(module, cls):
            if kind == "hardtanh":
                return kind, max(abs(float(module.min_val)), abs(float(module.max_val)))
            return kind, None
    return "", None


class FunctionalActivations(TorchFunctionMode):
    """Sees the activation functions a sampled forward calls; `probe` gets (kind, function, args, out)."""

    def __init__(self, probe: Any) -> None:
        super().__init__()
        self.probe = probe

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        kind = FUNCTIONS.get(func)
        if kind is not None:
            try:
                self.probe.functional(kind, args, out)
            except Exception as e:  # never break the user's forward
                record_error(self.probe.internal_errors, "functional activation", e)
        return out


class ForwardProbe:
    """The per-forward state of activation sampling: which leaf produced which tensor (to name a function
    after the layer it follows), the functions seen, and the mode that sees them."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.mode: FunctionalActivations | None = None
        self.leaf_outputs: dict[int, str] = {}  # id(output) -> leaf module name
        # id(out) -> (kind, src, the leaf last run before the call, row)
        self.functional_rows: dict[int, tuple[str, str | None, str | None, LayerSample]] = {}
        self.prev_leaf: str | None = None
        self.last: dict[int, LayerSample] = {}  # id(output) -> the sample of the activation that made it
        # a model whose first RETIRE_AFTER sampled forwards call no activation function outside its activation
        # modules (most library models: BERT's GELU is a module) is not searched again: the mode costs
        # about as much as the forward it watches
        self.watched_forwards = 0
        self.found_functions = False

    @property
    def internal_errors(self) -> list[str]:
        return self.monitor.internal_errors

    @property
    def retired(self) -> bool:
        """The forward calls no activation function outside its modules: the mode is not used again."""
        return self.watched_forwards >= RETIRE_AFTER and not self.found_functions

    def begin(self, model: nn.Module) -> None:
        """The root forward of a sampled step starts: watch the activation functions it calls."""
        self.leaf_outputs, self.functional_rows, self.last, self.prev_leaf = {}, {}, {}, None
        if self.mode is not None or type(model).__name__ == "OptimizedModule":  # torch.compile: no mode
            return
        if self.retired:
            return
        mode = FunctionalActivations(self)
        mode.__enter__()
        self.mode = mode

    def end(self, output: Any) -> None:
        """The root forward returned (or raised): stop watching; keep what the functions showed, named
        after the layer whose output they took (`relu(fc1)`) or numbered per function in call order."""
        mode, self.mode = self.mode, None
        if mode is not None:
            take_off(mode, self.internal_errors, "functional activation")
        if mode is not None:
            self.watched_forwards += 1
            self.found_functions = self.found_functions or bool(self.functional_rows)
        m = self.monitor
        counts: dict[str, int] = {}
        after: str | None = None
        for kind, src, prev, s in self.functional_rows.values():
            counts[kind] = counts.get(kind, 0) + 1
            s.layer = f"{kind}({src})" if src else f"{kind}#{counts[kind]}"
            if s.layer not in m._order_seen:  # in call order: right after the layer that ran before it
                m._order_seen.add(s.layer)
                anchor = after if after is not None and prev is None else prev
                at = m.layer_order.index(anchor) + 1 if anchor in m.layer_order else len(m.layer_order)
                m.layer_order.insert(at, s.layer)
            after = s.layer
            m._pending_acts[s.layer] = s
        y = first_tensor(output)
        if isinstance(y, torch.Tensor) and id(y) in self.last:
            self.last[id(y)].is_output = True
        self.functional_rows, self.leaf_outputs, self.last = {}, {}, {}

    def leaf(self, name: str, y: torch.Tensor, sample: LayerSample | None) -> None:
        """A leaf module's output (`sample`: its numbers, None on a step that takes none of that layer's): a
        function call inside it (nn.ReLU -> F.relu) is the module itself."""
        self.functional_rows.pop(id(y), None)
        self.leaf_outputs[id(y)] = name
        self.prev_leaf = name
        if sample is not None:
            self.last[id(y)] = sample
        else:
            self.last.pop(id(y), None)

    def functional(self, kind: str, args: tuple, out: Any) -> None:
        if not is_float(out) or out.numel() == 0:
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        src = self.leaf_outputs.get(id(x)) if x is not None else None
        inplace = x is out
        m = self.monitor
        s = summarize(m.count + 1, "", kind, out, None if inplace else x, m.histogram_now, m.sample_queue)
        s.type = f"torch.{kind}"
        self.functional_rows[id(out)] = (kind, src, self.prev_leaf, s)
        self.last[id(out)] = s
