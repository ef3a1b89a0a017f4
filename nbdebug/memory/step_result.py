"""What `nbdebug.memory.step` returns: per-layer activation memory of one step, its peak, and the forecast
of the peak as a function of batch size."""

from __future__ import annotations

import html
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from .._core.result import Result
from .._core.units import fmt_bytes as _fmt


@dataclass(frozen=True)
class LayerMemory:
    """One module's share of a step: what it saved for backward, its output, bytes alive after it."""

    name: str
    type: str
    saved_bytes: int  # storages first saved for backward by this layer (parameters and inputs excluded)
    saved_tensors: int
    output_bytes: int
    live_after: int  # bytes created in this step still alive when the layer returned (forward curve)


@dataclass(frozen=True)
class Forecast:
    """peak(N) = fixed + intercept + per_example x N, fit from two batch sizes."""

    sizes: tuple[int, int]
    step_peaks: tuple[int, int]  # peak bytes of the step (activations, gradients, temporaries)
    batch_bytes_per_example: float
    slope: float  # step bytes per example
    intercept: float
    fixed: int  # parameters + buffers + optimizer state (present, or expected after the first step)
    method: str  # "meta" (nothing allocated) or the device the small batches ran on

    @property
    def per_example(self) -> float:
        return self.slope + self.batch_bytes_per_example

    def step_bytes(self, n: int) -> float:
        return self.intercept + self.slope * n

    def bytes_at(self, n: int) -> float:
        """Forecast peak memory for a batch of `n` examples."""
        return self.fixed + self.intercept + self.per_example * n

    def max_batch(self, budget: int) -> int:
        """Largest batch whose forecast peak fits in `budget` bytes (0 when not even one does)."""
        room = budget - self.fixed - self.intercept
        if self.per_example <= 0:
            return 0 if room < 0 else 2**31
        return max(int(math.floor(room / self.per_example)), 0)

    def formula(self) -> str:
        return (
            f"peak(N) ~ {_fmt(self.fixed)} (parameters, buffers, optimizer state) + "
            f"{_fmt(self.intercept)} + {_fmt(self.per_example)} x N"
        )


@dataclass(repr=False)
class StepMemory(Result):
    """Result of `memory.step`: per-layer table, the measured peak, and the batch-size forecast."""

    layers: list[LayerMemory]
    batch_size: int
    device: str
    saved_bytes: int
    peak_bytes: int  # peak bytes created by the step above what existed before (dispatch tracker)
    peak_at: str  # the layer (forward) or "backward" where the peak was reached
    param_bytes: int
    buffer_bytes: int
    optimizer_bytes: int
    optimizer_note: str
    batch_bytes: int
    allocator_peak: int | None = None  # GPU only: torch.cuda.max_memory_allocated above the baseline
    forecast: Forecast | None = None
    budget: int | None = None
    verified: tuple[int, int] | None = None  # (largest batch that fits, its peak) from a meta run
    notes: list[str] = field(default_factory=list)

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame([vars(layer) for layer in self.layers])
        if frame.empty:
            frame = pd.DataFrame(columns=list(LayerMemory.__dataclass_fields__))
        return frame

    @property
    def max_batch(self) -> int | None:
        """Largest batch that fits in `budget`: the meta-checked figure when there is one, else the formula's."""
        if self.forecast is None or self.budget is None:
            return None
        if self.verified is not None:
            return self.verified[0]
        return self.forecast.max_batch(self.budget)

    @property
    def forecast_error(self) -> float | None:
        """Relative error of the forecast step peak at the measured batch size."""
        if self.forecast is None or not self.peak_bytes:
            return None
        return (self.forecast.step_bytes(self.batch_size) - self.peak_bytes) / self.peak_bytes

    def summary(self) -> str:
        return self._lines()[0]

    def _lines(self) -> list[str]:
        lines = [
            f"one training step, batch {self.batch_size} on {self.device}: saved for backward "
            f"{_fmt(self.saved_bytes)}, step peak {_fmt(self.peak_bytes)} (reached {self.peak_at})",
            f"fixed: parameters {_fmt(self.param_bytes)}, buffers {_fmt(self.buffer_bytes)}, "
            f"optimizer state {_fmt(self.optimizer_bytes)} ({self.optimizer_note})",
        ]
        if self.allocator_peak is not None:
            lines.append(f"CUDA allocator peak above baseline: {_fmt(self.allocator_peak)}")
        if self.forecast is not None:
            f = self.forecast
            lines.append(f"forecast ({f.method}, batches {f.sizes[0]} and {f.sizes[1]}): {f.formula()}")
            err = self.forecast_error
            if err is not None:
                lines.append(
                    f"check at N={self.batch_size}: forecast step peak {_fmt(f.step_bytes(self.batch_size))}"
                    f" vs measured {_fmt(self.peak_bytes)} ({err:+.1%})"
                )
            if self.budget is not None:
                lines.append(
                    f"largest batch that fits in {_fmt(self.budget)} by the formula: {self.max_batch}"
                )
            if self.verified is not None:
                lines.append(
                    f"checked on the meta device: batch {self.verified[0]} peaks at "
                    f"{_fmt(self.verified[1])}, within {_fmt(self.budget)}"
                )
        lines.extend(self.notes)
        return lines

    def __repr__(self) -> str:
        return f"StepMemory(batch={self.batch_size}, peak={_fmt(self.peak_bytes)})"

    def to_text(self) -> str:
        return "\n".join([*self._lines(), "", self.to_frame().to_string(index=False)])

    def _html_key(self) -> Hashable:
        return (self.budget, self.verified, len(self.notes))

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import step_figure

        shown = self.to_frame()
        for col in ("saved_bytes", "output_bytes", "live_after"):
            if col in shown:
                shown[col] = shown[col].map(_fmt)
        body = "".join(f"<li>{html.escape(line)}</li>" for line in self._lines())
        figure = png_html(figure_png(step_figure(self)), alt="activation memory per layer")
        return (
            f'<div class="nbdebug-memory-step"><ul>{body}</ul>{figure}'
            f"{shown.to_html(index=False, border=0)}</div>"
        )
