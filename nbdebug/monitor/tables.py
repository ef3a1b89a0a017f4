"""The sampled per-layer statistics of a `StepMonitor` as tables: what `Watch.layer_stats()`, the
histogram tab and the GAN panel's per-network views read."""

from __future__ import annotations

from dataclasses import asdict

from .._core.errors import NbdebugError
from .records import LayerSample


class SampleTables:
    """Mixin of `StepMonitor` (reads `self.samples`, {step: [LayerSample]})."""

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
