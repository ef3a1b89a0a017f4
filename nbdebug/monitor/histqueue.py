"""Histograms binned when someone looks at them. A histogram step keeps a copy of each layer's sampled
activations and gradients (at most HIST_SAMPLE values each); `resolve` bins what waits in batched passes
(`batched_histograms`) when it is asked for: one layer's activations or gradients (`Watch.histograms`, the
panel's histogram tab, a figure show one at a time), or everything, in the loop, once MAX_WAITING values or
MAX_STEPS steps wait. Binning at each histogram step cost a small CNN's watched step 1.9 ms (a BERT's 4 ms)
that a run nobody draws histograms of never needed, and a host read on a GPU; binning every layer's when one
is drawn cost a 60-step BERT run 17-26 ms for the one of 123 series shown."""

from __future__ import annotations

import torch

from .records import LayerSample
from .summaries import HIST_SAMPLE, batched_histograms, strided

MAX_WAITING = 1 << 22  # values (16 MB in float32) kept before they are binned in the loop
MAX_STEPS = 32  # histogram steps kept before they are binned in the loop (a flat tensor count on long runs)
CHUNK = 32  # histograms binned in one batched pass (32 x 4096 values: 0.5 MB, 1 MB of bin indices)


def hist_values(t: torch.Tensor) -> torch.Tensor:
    """At most HIST_SAMPLE values of `t` (its strided subsample), as a float32 copy that shares no memory
    with `t`: an activation can be changed in place later in the forward (a ReLU(inplace=True) after the
    layer), a gradient by the next backward or zero_grad."""
    flat = strided(t, HIST_SAMPLE)
    return flat.clone(memory_format=torch.contiguous_format) if flat.dtype == t.dtype else flat


class HistogramQueue:
    """The histogram values of sampled steps not binned yet, per step (a thinned-out step's are dropped)."""

    def __init__(self, bins: int) -> None:
        self.bins = bins
        self.waiting: dict[int, list[tuple[LayerSample, str, torch.Tensor]]] = {}
        self.values = 0

    def add(self, step: int, sample: LayerSample, attr: str, values: torch.Tensor) -> None:
        """Bin `values` (from `hist_values`) into `sample.<attr>` ("act_hist" or "grad_hist") later."""
        self.waiting.setdefault(step, []).append((sample, attr, values))
        self.values += values.numel()
        if self.values > MAX_WAITING or len(self.waiting) > MAX_STEPS:
            self.resolve()

    def drop(self, step: int) -> None:
        """Forget a step's values (its samples were thinned out)."""
        for _, _, v in self.waiting.pop(step, ()):
            self.values -= v.numel()

    def resolve(self, layer: str | None = None, attr: str | None = None) -> None:
        """Bin the waiting histograms of `layer` ("act_hist" or "grad_hist" as `attr`; every layer's and both
        by default): a batched pass (`batched_histograms`) per group of values of one length, CHUNK at most
        (on the CPU the rows of one matrix: rows of unequal length are padded, and one matrix of a whole run's
        histograms cost 4-10x the sum of its chunks)."""
        if layer is None and attr is None:
            items = [item for step in sorted(self.waiting) for item in self.waiting[step]]
            self.waiting, self.values = {}, 0
        else:
            items = []
            for step in sorted(self.waiting):
                rest = []
                for item in self.waiting[step]:
                    wanted = (layer is None or item[0].layer == layer) and (attr is None or item[1] == attr)
                    (items if wanted else rest).append(item)
                if rest:
                    self.waiting[step] = rest
                else:
                    del self.waiting[step]
            self.values -= sum(v.numel() for *_, v in items)
        groups: dict[int, list[tuple[LayerSample, str, torch.Tensor]]] = {}
        for item in items:
            groups.setdefault(item[2].numel(), []).append(item)
        for group in groups.values():
            for at in range(0, len(group), CHUNK):
                chunk = group[at : at + CHUNK]
                for (sample, attr, _), h in zip(chunk, batched_histograms([v for *_, v in chunk], self.bins)):
                    setattr(sample, attr, h)


def layer_hist_values(
    grads: list[torch.Tensor | None], layers: dict[str, list[int]], scale: float | torch.Tensor
) -> dict[str, torch.Tensor]:
    """Each layer's gradient histogram values (its parameters' subsampled gradients together, divided by the
    GradScaler factor they still carry): slices of one copy of every subsample (`torch.cat`: a later backward
    or zero_grad cannot reach it), not a concatenation and a copy per layer (a BERT's 37 layers: 185
    dispatches a histogram step)."""
    views: list[torch.Tensor] = []
    spans: list[tuple[str, int, int]] = []
    for layer, idx in layers.items():
        start = len(views)
        views += [strided(grads[i], HIST_SAMPLE) for i in idx if grads[i] is not None]
        if len(views) > start:
            spans.append((layer, start, len(views)))
    if not views:
        return {}
    flat = torch.cat(views) if len(views) > 1 else views[0].clone()
    if not (isinstance(scale, float) and scale == 1.0):
        flat = flat.div_(scale)
    ends = [0]
    for v in views:
        ends.append(ends[-1] + v.numel())
    return {layer: strided(flat[ends[a] : ends[b]], HIST_SAMPLE) for layer, a, b in spans}
