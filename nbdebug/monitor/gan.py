"""`nbdebug.watch_gan`: the training monitor of `nbdebug.watch`, run once per network of a GAN.

A GAN loop has two optimizers and three kinds of backward pass (D on real, D on fake, G through D).
`watch_gan` puts one `StepMonitor` on (D, d_optimizer) and one on (G, g_optimizer), sees every backward
and loss through the same interception as `watch`, and adds what only a GAN has:

* each backward's loss is attributed to the optimizer that steps next (so D's loss is D's, even though
  G's backward also fills D's `.grad`); a gradient leak is judged per optimizer at its step() (so G's
  backward filling D's `.grad` is not a leak when `d_optimizer.zero_grad()` clears it first);
* every D forward is classified real or fake (its input came from G: same storage, or a graph through
  G) and its output turned into a probability (a sigmoid when D returns logits): D(x) and D(G(z));
* every `samples_every` G steps, G is run on a fixed noise batch chosen at start (RNG, mode and
  BatchNorm buffers restored, so training is unchanged) for the sample grid, and the diversity of G's
  training batch is measured against the real batch's (mean pairwise distance).

Limits: a D forward on a batch that mixes real and fake examples (torch.cat) counts as real; noise added
to a detached fake (instance noise) makes it count as real too. D(x) and D(G(z)) read as probabilities
only when D ends in a Sigmoid or feeds BCEWithLogitsLoss (see `GanWatch.d_probabilities`).

Results: `GanWatch.findings`, `GanWatch.history` (one row per G step), `GanWatch.frames` (the sample
grid over time), `GanWatch.layer_stats(net)`. The live dashboard subscribes with `on_update`.
"""

from __future__ import annotations

import collections
import dataclasses
import html
import math
from collections.abc import Callable
from statistics import median
from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError
from .._core.findings import findings_html, withdrawn_html
from .._core.hooks import HookSet
from .._core.tensors import first_tensor, storage_key
from .detached import DetachProbe
from .gan_args import validate_gan_args
from .gan_checks import (
    _soft_labels,
)
from .gan_diagnosis import GanDiagnosis
from .gan_samples import Frame, GanSamples, mean_pairwise_distance
from .gan_wiring import d_optimizer_usable, wrong_network_findings
from .live import LiveResults
from .losscalls import describe_call
from .records import StepRecord
from .stats import StepMonitor


@dataclasses.dataclass
class _Pending:
    """What happened since the last optimizer step of either network (attributed at the next one)."""

    losses: list[torch.Tensor] = dataclasses.field(default_factory=list)
    real: list[torch.Tensor] = dataclasses.field(default_factory=list)  # D's mean probability per forward
    fake: list[torch.Tensor] = dataclasses.field(default_factory=list)
    targets: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (min, max) per loss call
    signal: list[torch.Tensor] = dataclasses.field(default_factory=list)  # sum |dloss/dlogit| at D(fake)


def _mean(values: list[torch.Tensor]) -> float:
    return float(torch.stack(values).mean()) if values else math.nan


class GanWatch(GanDiagnosis, LiveResults, GanSamples):
    """Context manager returned by `nbdebug.watch_gan`; see the module docstring."""

    def __init__(
        self,
        discriminator: nn.Module,
        generator: nn.Module,
        d_optimizer: torch.optim.Optimizer,
        g_optimizer: torch.optim.Optimizer,
        *,
        every: int = 10,
        samples_every: int = 25,
        noise: torch.Tensor | Callable[[int], Any] | None = None,
        n_samples: int = 64,
        real: torch.Tensor | None = None,
        seed: int = 0,
        on_update: Callable[[GanWatch], None] | None = None,
        update_interval: float = 0.5,
        max_frames: int = 40,
        names: tuple[str, str, str, str] = ("D", "G", "d_optimizer", "g_optimizer"),
    ) -> None:
        validate_gan_args(
            discriminator, generator, d_optimizer, g_optimizer, every, samples_every, noise, n_samples, real
        )
        self.discriminator, self.generator = discriminator, generator
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.names = names
        self.wiring_findings = wrong_network_findings(
            discriminator, generator, d_optimizer, g_optimizer, names
        )
        # D stepped by an optimizer that is not its own: D is watched without one (it never steps)
        self._d_stepped = d_optimizer_usable(discriminator, d_optimizer, g_optimizer)
        d_opt = d_optimizer if self._d_stepped else None
        self.d_monitor = StepMonitor(discriminator, d_opt, name=names[0], every=every, histograms=False)
        if not self._d_stepped:
            self.d_monitor._own = set()  # adopt no optimizer: the one D's phase steps is not D's
            self.d_monitor.expect_optimizer = True  # D's backward passes are not analysis either
        self.g_monitor = StepMonitor(generator, g_optimizer, name=names[1], every=every, histograms=False)
        self.d_monitor.on_step.append(self._after_d_step)
        self.g_monitor.on_step.append(self._after_g_step)
        self.every, self.samples_every, self.n_samples, self.seed = every, samples_every, n_samples, seed
        self.noise_arg, self.real_arg, self.max_frames = noise, real, max_frames
        self._init_live(on_update, update_interval)
        # one list of internal errors for the run: the monitors' hooks and the GAN's own code write to it
        self.d_monitor.internal_errors = self.g_monitor.internal_errors = self.internal_errors
        # a GAN's rows pair each G step with its D steps' numbers and D's outputs, read as they happen
        # (one read per step: the plain watch's batched reads are in pending.py)
        self.d_monitor.eager_reads = self.g_monitor.eager_reads = True
        self.frames: list[Frame] = []
        self.d_outputs: str | None = None  # "probability" or "logit", seen on D's first training forward
        self.fixed_noise: Any = noise if isinstance(noise, (torch.Tensor, tuple)) else None
        self.real_diversity = mean_pairwise_distance(real) if real is not None else math.nan
        self.real_samples: torch.Tensor | None = (
            real.detach()[:256].cpu().float() if real is not None else None
        )
        self._real_divs: list[float] = []
        self._pending = _Pending()
        self._step_extra = _Pending()
        self.sampling_error: str | None = None  # why the sample grid is off (G needs more than the noise)
        self._d_rows: list[dict[str, Any]] = []  # D steps since the last G step
        self._rows: list[dict[str, Any]] = []
        # G's last outputs, held (not just their addresses) so that a freed one's address, reused by the
        # allocator for a real batch, cannot be mistaken for G's; costs two output batches of memory
        self._fakes: collections.deque[torch.Tensor] = collections.deque(maxlen=2)
        self._noise_spec: tuple[tuple[int, ...], torch.dtype, torch.device] | None = None
        self._kind: list[str] = []  # classification of the D forward in flight
        self._own_call = False
        self._capture = True  # keep the next training batches of G and of real data for diversity
        self._last_fake: torch.Tensor | None = None
        self._last_real: torch.Tensor | None = None
        self._loss_calls: dict[str, Any] = {}
        self._n_loss_calls = 0
        self._new_frame = False
        # a loss term built from detached tensors (monitor/detached.py), judged in gan_diagnosis.py
        self._detached = DetachProbe(
            [generator, discriminator], self.internal_errors, lambda: self.g_monitor.count + 1
        )

    # -- context -------------------------------------------------------------------------------------
    def __enter__(self) -> GanWatch:
        self._start(self._attach, "nbdebug.watch_gan(...)")
        return self

    def _attach(self, hooks: HookSet) -> None:
        # ours first: they hand the pending loss to the monitor before its own step hook reads it
        if self._d_stepped:
            hooks.add(self.d_optimizer.register_step_pre_hook(lambda *a: self._before_step("d")))
        hooks.add(self.g_optimizer.register_step_pre_hook(lambda *a: self._before_step("g")))
        hooks.forward(self.generator, self._g_forward)
        hooks.forward_pre(self.generator, self._g_forward_pre)
        hooks.forward_pre(self.discriminator, self._d_forward_pre)
        hooks.forward(self.discriminator, self._d_forward)
        self.d_monitor.attach(hooks)
        self.g_monitor.attach(hooks)
        self._detached.attach(hooks)

    def _release(self) -> None:
        self._detached.release()
        self.d_monitor.release()
        self.g_monitor.release()
        self._last_fake = self._last_real = None
        self._fakes.clear()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop(exc_type, self._release)
        if self._d_rows:  # D steps after the last G step (or a loop that never stepped G)
            self._close_row(None)
        self._diagnose(final=True)
        self._notify(force=True)

    # -- events from _intercept ----------------------------------------------------------------------
    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None:
        if phase == "start":
            for t in tensors:
                if t.numel() == 1 and t.is_floating_point():
                    self._pending.losses.append(self.d_monitor.amp.loss_of(t).detach().reshape(()))
        # both monitors see every backward (G's fills D's .grad too); neither accumulates the loss
        self.d_monitor.on_backward((), phase)
        self.g_monitor.on_backward((), phase)
        self._detached.on_backward(tensors, phase)

    def on_loss(self, name: str, input: Any, target: Any, output: Any, kwargs: dict) -> None:
        if not isinstance(input, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        if not (torch.is_grad_enabled() and input.requires_grad):
            return
        if name not in self._loss_calls:
            t = target.detach() if isinstance(target, torch.Tensor) else None
            step = self.d_monitor.count + self.g_monitor.count + 1
            self._loss_calls[name] = describe_call(name, input.detach(), t, input, output, kwargs, step)
        # soft/noisy labels (a hint of gan-d-collapse): read on the first 50 loss calls and every 10th after
        self._n_loss_calls += 1
        n = self._n_loss_calls
        if (
            (n <= 50 or n % 10 == 0)
            and isinstance(target, torch.Tensor)
            and target.is_floating_point()
            and target.numel()
        ):
            lo, hi = torch.aminmax(target.detach())
            self._pending.targets.append((float(lo), float(hi)))

    def on_scaler(self, event: str, scaler: Any, *args: Any) -> None:  # GradScaler: see amp.py
        for monitor in (self.d_monitor, self.g_monitor):
            monitor.amp.on_scaler(event, scaler, *args)

    def on_loader_iter(self, loader: Any) -> None:
        """Epochs play no part in GAN diagnosis."""

    # -- forward hooks -------------------------------------------------------------------------------
    def _g_forward_pre(self, module: nn.Module, args: tuple) -> None:
        if self._own_call or self._noise_spec is not None or self.noise_arg is not None:
            return
        z = first_tensor(args)
        if isinstance(z, torch.Tensor) and z.dim() >= 1 and z.is_floating_point():
            self._noise_spec = (tuple(z.shape), z.dtype, z.device)

    def _g_forward(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self._own_call:
            return
        y = first_tensor(out)
        if isinstance(y, torch.Tensor):
            self._fakes.append(y.detach())
            if self._capture and torch.is_grad_enabled() or self._capture and self._last_fake is None:
                self._last_fake = y.detach()

    def _d_forward_pre(self, module: nn.Module, args: tuple) -> None:
        x = first_tensor(args)
        if self._own_call or not torch.is_grad_enabled() or not isinstance(x, torch.Tensor):
            self._kind.append("skip")
            return
        if x.grad_fn is not None or storage_key(x) in {storage_key(f) for f in self._fakes}:
            kind = "fake"
        elif x.requires_grad:  # a leaf that wants a gradient: gradient-penalty interpolates, not data
            kind = "skip"
        else:
            kind = "real"
            if self._capture:
                self._last_real = x.detach()
        self._kind.append(kind)

    def _d_forward(self, module: nn.Module, args: tuple, out: Any) -> None:
        kind = self._kind.pop() if self._kind else "skip"
        y = first_tensor(out)
        if kind == "skip" or not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.numel() == 0:
            return
        if self.d_outputs is None:
            sig = y.grad_fn is not None and "Sigmoid" in type(y.grad_fn).__name__
            self.d_outputs = "probability" if sig else "logit"
        prob = self.d_outputs == "probability"
        yd = y.detach().float()
        p = yd if prob else torch.sigmoid(yd)
        getattr(self._pending, kind).append(p.mean())
        if kind == "fake" and y.requires_grad:
            # the learning signal G gets: the loss's gradient at D's logit for each fake, summed (so a
            # mean-reduced loss reads as a per-example average). A sigmoid output is taken back to its
            # logit (x p(1-p)), where the saturating loss log(1 - D(G(z))) loses its gradient.
            pending = self._pending

            def signal(grad: torch.Tensor) -> None:
                g = grad.detach().float()
                pending.signal.append((g * p * (1 - p) if prob else g).abs().sum())

            y.register_hook(signal)

    # -- optimizer steps -----------------------------------------------------------------------------
    def _before_step(self, net: str) -> None:
        """Attribute the backward passes since the last step (of either network) to this one."""
        p, self._pending = self._pending, _Pending()
        self._kind.clear()  # a D forward that raised never reached its post-hook
        monitor = self.d_monitor if net == "d" else self.g_monitor
        if p.losses:
            total = p.losses[0]
            for t in p.losses[1:]:
                total = total + t
            monitor._pending_loss = total  # the monitor reads it in its own step pre-hook, next
        self._step_extra = p

    def _after_d_step(self, monitor: StepMonitor, rec: StepRecord) -> None:
        p = self._step_extra
        self._d_rows.append(
            {
                "loss": rec.loss,
                "d_real": _mean(p.real),
                "d_fake": _mean(p.fake),
                "grad_norm": rec.grad_norm,
                "ratio": self._ratio(monitor, rec.step),
                "leaked": rec.leaked,
                "lr": rec.lr,
                "soft": _soft_labels(p.targets),
            }
        )
        if (rec.leaked and self.found_at("grad-not-zeroed") is None) or not math.isfinite(rec.loss):
            self._diagnose(urgent=True)
        if not self.g_monitor.count:
            self._notify()

    def _after_g_step(self, monitor: StepMonitor, rec: StepRecord) -> None:
        p = self._step_extra
        step = rec.step
        row = self._close_row(rec, p)
        if self._capture or step == 1:
            try:
                self._measure(row, step)
            except Exception as e:  # a measurement bug must not stop the user's training
                self.internal_errors.append(f"samples: {type(e).__name__}: {e}")
        nxt = step + 1
        self._capture = nxt % self.samples_every == 0
        if not self._capture:
            self._last_fake = self._last_real = None
        if self._new_frame:  # a new sample grid is shown at once (the panel throttles drawing)
            self._new_frame = False
            self._notify(force=True)
        # every step at first (the notes' collapse came within a few steps), then every `every` steps,
        # and at once on a first leak or NaN
        urgent = (rec.leaked and self.found_at("grad-not-zeroed") is None) or not math.isfinite(rec.loss)
        if urgent or step <= 20 or step % self.every == 0 or self._capture:
            self._diagnose(urgent=urgent or step <= 20)
        self._notify()

    def _close_row(self, rec: StepRecord | None, p: _Pending | None = None) -> dict[str, Any]:
        d = self._d_rows
        self._d_rows = []

        def agg(key: str) -> float:
            vals = [r[key] for r in d if r[key] == r[key]]
            return sum(vals) / len(vals) if vals else math.nan

        ratios = [r["ratio"] for r in d if r["ratio"] == r["ratio"]]
        row = {
            "step": rec.step if rec is not None else self.g_monitor.count,
            "d_steps": len(d),
            "d_loss": agg("loss"),
            "g_loss": rec.loss if rec is not None else math.nan,
            "d_real": agg("d_real"),
            "d_fake": agg("d_fake"),
            "d_fake_g": _mean(p.fake) if p is not None else math.nan,
            "g_signal": float(torch.stack(p.signal).sum()) if p is not None and p.signal else math.nan,
            "d_grad_norm": agg("grad_norm"),
            "g_grad_norm": rec.grad_norm if rec is not None else math.nan,
            "d_ratio": ratios[-1] if ratios else math.nan,
            "g_ratio": self._ratio(self.g_monitor, rec.step) if rec is not None else math.nan,
            "d_leaked": sum(r["leaked"] for r in d),
            "g_leaked": rec.leaked if rec is not None else 0,
            "d_lr": d[-1]["lr"] if d else math.nan,
            "g_lr": rec.lr if rec is not None else math.nan,
            "soft_labels": any(r["soft"] for r in d),
            "diversity": math.nan,
            "sample_diversity": math.nan,
        }
        self._rows.append(row)
        return row

    @staticmethod
    def _ratio(monitor: StepMonitor, step: int) -> float:
        rs = [s.update_ratio for s in monitor.samples.get(step, []) if math.isfinite(s.update_ratio)]
        return median(rs) if rs else math.nan

    @property
    def steps(self) -> int:
        """G optimizer steps so far."""
        return self.g_monitor.count

    @property
    def d_steps(self) -> int:
        return self.d_monitor.count

    @property
    def history(self):
        """One row per G step: D and G loss (D's summed over the D steps since the previous row, averaged
        when there are several), D(x), D(G(z)) in D's step (d_fake) and in G's (d_fake_g) as probabilities,
        gradient norms, g_signal (the gradient G's loss puts on D's logits), median update/weight ratios
        (sampled steps), leaked parameters, learning rates, and diversity (G's training batch) and
        sample_diversity (G on the fixed noise), both relative to the real batch's spread."""
        import pandas as pd

        cols = [
            "step", "d_steps", "d_loss", "g_loss", "d_real", "d_fake", "d_fake_g", "d_grad_norm",
            "g_grad_norm", "g_signal", "d_ratio", "g_ratio", "d_leaked", "g_leaked", "d_lr", "g_lr", "soft_labels",
            "diversity", "sample_diversity",
        ]  # fmt: skip
        return pd.DataFrame(self._rows, columns=cols)

    def layer_stats(self, net: str = "D", last: bool = False):
        """Per-layer statistics of one network (`"D"` or `"G"`), as `Watch.layer_stats()` gives them."""
        return self.net(net).layer_stats(last=last)

    def net(self, net: str) -> StepMonitor:
        """The `StepMonitor` of one network: `"D"`/`"discriminator"` or `"G"`/`"generator"` (or its name)."""
        key = str(net).lower()
        if key in ("d", "discriminator", self.names[0].lower()):
            return self.d_monitor
        if key in ("g", "generator", self.names[1].lower()):
            return self.g_monitor
        raise NbdebugError(f"net must be 'D' (discriminator) or 'G' (generator), got {net!r}")

    # -- display -------------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """'not started', 'running', 'finished' or 'stopped by <exception>'."""
        if self.running:
            return "running"
        if math.isnan(self.finished):
            return "not started"
        return f"stopped by {self.exc_type.__name__}" if self.exc_type is not None else "finished"

    def summary(self) -> str:
        state = self.state
        h = self._rows[-1] if self._rows else None
        last = ""
        if h is not None:
            last = (
                f", last: D loss {h['d_loss']:.3g}, G loss {h['g_loss']:.3g}, D(x) {h['d_real']:.2f}, "
                f"D(G(z)) {h['d_fake']:.2f}"
            )
        return f"GanWatch ({state}): {self.d_steps} D steps, {self.steps} G steps{last}"

    no_findings = "No findings: the GAN trains healthily."

    def to_text(self) -> str:
        note = f"\nno sample grid: {self.sampling_error}" if self.sampling_error else ""
        return super().to_text() + note

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .gan_plot import dashboard_figure, samples_figure

        imgs = ""
        if self._rows:
            imgs += png_html(figure_png(dashboard_figure(self)), alt="GAN dashboard")
        if self.frames:
            imgs += png_html(figure_png(samples_figure(self)), alt="samples from the fixed noise batch")
        if self.sampling_error:
            imgs += f"<div><i>no sample grid: {html.escape(self.sampling_error)}</i></div>"
        return (
            f'<div class="nbdebug-gan"><b>{html.escape(self.summary())}</b>'
            f"{findings_html(self.findings, empty=self.no_findings)}{withdrawn_html(self.withdrawn)}{imgs}</div>"
        )
