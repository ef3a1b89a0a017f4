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
import time
from collections.abc import Callable
from statistics import median
from typing import Any

import torch
from torch import nn

from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import HookSet, preserved
from .checks import (
    GRAD_HUGE,
    PERSIST,
    RunData,
    check_eval_mode,
    check_grad_not_zeroed,
    check_gradient_scale,
    check_learning_rate,
    check_loss_calls,
    check_no_grad,
    check_nonfinite,
)
from .live import LiveResults
from .stats import StepMonitor, StepRecord, _first_tensor
from .watch import Watch, _describe_call

# Thresholds (catalogue entries gan-*; each documented where it is applied)
COLLAPSE_HIGH = 0.95  # D(x) above this ...
COLLAPSE_LOW = 0.05  # ... and D(G(z)) below this: D separates perfectly
COLLAPSE_STEPS = 5  # consecutive D steps the separation must last
VANISH_REL = 1e-2  # gradient at D's output in G's backward below 1% of its early level (first 5 G steps)
DIVERSITY_LOW = 0.1  # G's batch diversity below 10% of the real batch's
DIVERSITY_POINTS = 2  # consecutive measurements it must stay there
LR_RATIO = 5.0  # D's lr this many times G's is named as a cause of D winning


class _NetView:
    """One network's side of a GanWatch, read through `Watch`'s own table builders (same columns)."""

    layer_stats = Watch.layer_stats
    histograms = Watch.histograms
    layers = Watch.layers

    def __init__(self, monitor: StepMonitor) -> None:
        self.monitor = monitor


@dataclasses.dataclass
class Frame:
    """G's output on the fixed noise batch after G step `step` (CPU float tensor)."""

    step: int
    samples: torch.Tensor
    diversity: float  # their mean pairwise distance / the real data's


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


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:  # tensors without storage (meta, some subclasses)
        return -1


def mean_pairwise_distance(x: torch.Tensor, max_n: int = 128) -> float:
    """Mean Euclidean distance between the (flattened) rows of `x`: the spread of a batch."""
    flat = x.detach().reshape(x.shape[0], -1).float()[:max_n]
    if flat.shape[0] < 2:
        return math.nan
    return float(torch.pdist(flat).mean())


class GanWatch(LiveResults):
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
        _validate(
            discriminator, generator, d_optimizer, g_optimizer, every, samples_every, noise, n_samples, real
        )
        self.discriminator, self.generator = discriminator, generator
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
        self.names = names
        self.d_monitor = StepMonitor(discriminator, d_optimizer, name=names[0], every=every, histograms=False)
        self.g_monitor = StepMonitor(generator, g_optimizer, name=names[1], every=every, histograms=False)
        self.d_monitor.on_step.append(self._after_d_step)
        self.g_monitor.on_step.append(self._after_g_step)
        self.every, self.samples_every, self.n_samples, self.seed = every, samples_every, n_samples, seed
        self.noise_arg, self.real_arg, self.max_frames = noise, real, max_frames
        self.on_update, self.update_interval = on_update, update_interval
        self.internal_errors: list[str] = []
        self.running = False
        self.exc_type: type | None = None
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
        self._findings: dict[tuple[str, str | None], Finding] = {}
        self._found_at: dict[tuple[str, str | None], int] = {}
        self._hooks: HookSet | None = None
        self._listening: Any = None
        self._last_update = -math.inf
        self._update_cost = 0.0
        self._new_frame = False
        self._last_diag = -math.inf
        self._diag_cost = 0.0
        self.updates = 0
        self.started = self.finished = math.nan

    # -- context -------------------------------------------------------------------------------------
    def __enter__(self) -> GanWatch:
        self._start(self._attach, "nbdebug.watch_gan(...)")
        return self

    def _attach(self, hooks: HookSet) -> None:
        # ours first: they hand the pending loss to the monitor before its own step hook reads it
        hooks.add(self.d_optimizer.register_step_pre_hook(lambda *a: self._before_step("d")))
        hooks.add(self.g_optimizer.register_step_pre_hook(lambda *a: self._before_step("g")))
        hooks.forward(self.generator, self._g_forward)
        hooks.forward_pre(self.generator, self._g_forward_pre)
        hooks.forward_pre(self.discriminator, self._d_forward_pre)
        hooks.forward(self.discriminator, self._d_forward)
        self.d_monitor.attach(hooks)
        self.g_monitor.attach(hooks)

    def _release(self) -> None:
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
                    self._pending.losses.append(t.detach().reshape(()))
        # both monitors see every backward (G's fills D's .grad too); neither accumulates the loss
        self.d_monitor.on_backward((), phase)
        self.g_monitor.on_backward((), phase)

    def on_loss(self, name: str, input: Any, target: Any, output: Any, kwargs: dict) -> None:
        if not isinstance(input, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        if not (torch.is_grad_enabled() and input.requires_grad):
            return
        if name not in self._loss_calls:
            t = target.detach() if isinstance(target, torch.Tensor) else None
            step = self.d_monitor.count + self.g_monitor.count + 1
            self._loss_calls[name] = _describe_call(name, input.detach(), t, input, output, kwargs, step)
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

    def on_loader_iter(self, loader: Any) -> None:
        """Epochs play no part in GAN diagnosis."""

    # -- forward hooks -------------------------------------------------------------------------------
    def _g_forward_pre(self, module: nn.Module, args: tuple) -> None:
        if self._own_call or self._noise_spec is not None or self.noise_arg is not None:
            return
        z = _first_tensor(args)
        if isinstance(z, torch.Tensor) and z.dim() >= 1 and z.is_floating_point():
            self._noise_spec = (tuple(z.shape), z.dtype, z.device)

    def _g_forward(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self._own_call:
            return
        y = _first_tensor(out)
        if isinstance(y, torch.Tensor):
            self._fakes.append(y.detach())
            if self._capture and torch.is_grad_enabled() or self._capture and self._last_fake is None:
                self._last_fake = y.detach()

    def _d_forward_pre(self, module: nn.Module, args: tuple) -> None:
        x = _first_tensor(args)
        if self._own_call or not torch.is_grad_enabled() or not isinstance(x, torch.Tensor):
            self._kind.append("skip")
            return
        if x.grad_fn is not None or _storage(x) in {_storage(f) for f in self._fakes}:
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
        y = _first_tensor(out)
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

    # -- samples and diversity -----------------------------------------------------------------------
    def _measure(self, row: dict[str, Any], step: int) -> None:
        if self._last_real is not None and self.real_arg is None:
            d = mean_pairwise_distance(self._last_real)
            if math.isfinite(d):
                self._real_divs.append(d)
                self.real_diversity = median(self._real_divs[-20:])
                if self.real_samples is None:
                    self.real_samples = self._last_real[:256].cpu().float()
        ref = self.real_diversity
        if self._last_fake is not None and math.isfinite(ref) and ref > 0:
            row["diversity"] = mean_pairwise_distance(self._last_fake) / ref
        self._last_fake = self._last_real = None
        samples = self.sample()
        if samples is None:
            return
        div = mean_pairwise_distance(samples) / ref if math.isfinite(ref) and ref > 0 else math.nan
        row["sample_diversity"] = div
        self.frames.append(Frame(step, samples, div))
        self._new_frame = True
        if len(self.frames) > self.max_frames:  # keep the first and the latest, thin the middle
            del self.frames[1:-1:2]

    def _noise(self) -> Any:
        if self.fixed_noise is not None:
            return self.fixed_noise
        if callable(self.noise_arg):
            self.fixed_noise = self.noise_arg(self.n_samples)
            return self.fixed_noise
        if self._noise_spec is None:
            return None
        shape, dtype, device = self._noise_spec
        gen = torch.Generator(device=device).manual_seed(self.seed)  # private: the user's RNG is untouched
        self.fixed_noise = torch.randn(
            (self.n_samples, *shape[1:]), generator=gen, dtype=dtype, device=device
        )
        return self.fixed_noise

    def sample(self) -> torch.Tensor | None:
        """G's output on the fixed noise batch, now (CPU float). G's mode, BatchNorm buffers and the RNG
        are restored afterwards, so sampling never changes the training; None before G's first call."""
        if self.sampling_error is not None:
            return None
        z = self._noise()
        if z is None:
            return None
        self._own_call = True
        try:
            with preserved(self.generator), torch.no_grad():
                out = self.generator(*z) if isinstance(z, tuple) else self.generator(z)
        except Exception as e:  # e.g. a conditional G that also needs labels: say so once, keep training
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            self.sampling_error = (
                f"G(fixed noise {shape}) failed with {type(e).__name__}: {e}; pass noise= (a tensor, a tuple of "
                "G's arguments, or a function n -> noise) to watch_gan / --noise to %%nn_gan"
            )
            return None
        finally:
            self._own_call = False
        y = _first_tensor(out)
        return y.detach().float().cpu() if isinstance(y, torch.Tensor) else None

    # -- diagnosis -----------------------------------------------------------------------------------
    def _net_run(self, monitor: StepMonitor, final: bool, loss_calls: list | None = None) -> RunData:
        return RunData.from_monitor(monitor, loss_calls or [], final)

    def _diagnose(self, final: bool = False, urgent: bool = False) -> None:
        """Run the checks; a routine (not final, not urgent) run is skipped while the checks would take
        more than ~5% of the wall time (they read the whole history: long runs make them slower)."""
        if not (final or urgent) and time.perf_counter() - self._last_diag < 20 * self._diag_cost:
            return
        self._run_checks(lambda: self._diagnosis(final), lambda: self.g_monitor.count)

    def _diagnosis(self, final: bool) -> list[Finding]:
        out: list[Finding] = []
        labels = {
            "d": ("discriminator", self.names[0], self.names[2]),
            "g": ("generator", self.names[1], self.names[3]),
        }
        for net, monitor in (("d", self.d_monitor), ("g", self.g_monitor)):
            role, model_name, opt_name = labels[net]
            run = self._net_run(monitor, final)
            for check in (
                check_grad_not_zeroed,
                check_nonfinite,
                check_learning_rate,
                check_no_grad,
                check_eval_mode,
            ):
                for f in check(run):
                    out.append(_for_network(f, role, model_name, opt_name))
            for f in check_gradient_scale(run):
                # only the absolute rule (> 1e3): G's first gradients are tiny while D is untrained, so
                # "100x the first step" is normal growth in a GAN; vanishing: see gan-g-vanishing
                if f.code == "exploding-gradients" and f.evidence.get("grad_norm", 0) > GRAD_HUGE:
                    out.append(_for_network(f, role, model_name, opt_name))
        for f in check_loss_calls(self._net_run(self.d_monitor, final, list(self._loss_calls.values()))):
            if f.code in ("sigmoid-bceloss", "sigmoid-before-bce-logits", "target-broadcast"):
                out.append(f)
        codes = {(f.code, f.where) for f in out}
        out.extend(self._gan_checks(codes))
        return out

    @property
    def d_probabilities(self) -> bool:
        """Whether D's outputs are probabilities (a final Sigmoid) or logits of one (fed to
        BCEWithLogitsLoss). For a Wasserstein critic, hinge or least-squares D the history still holds
        sigmoid(score), but the collapse and vanishing rules, which read probabilities, are not applied."""
        return self.d_outputs == "probability" or "binary_cross_entropy_with_logits" in self._loss_calls

    def _gan_checks(self, found: set[tuple[str, str | None]]) -> list[Finding]:
        rows = self._rows
        out: list[Finding] = []
        if self.d_probabilities:
            collapse = check_d_collapse(rows, self, found)
            if collapse is not None:
                out.append(collapse)
            vanish = check_g_vanishing(rows, self)
            if vanish is not None:
                out.append(vanish)
        mode = check_mode_collapse(rows, self)
        if mode is not None:
            out.append(mode)
        return out

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

    def net(self, net: str) -> _NetView:
        key = str(net).lower()
        if key in ("d", "discriminator", self.names[0].lower()):
            return _NetView(self.d_monitor)
        if key in ("g", "generator", self.names[1].lower()):
            return _NetView(self.g_monitor)
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

    def __repr__(self) -> str:
        note = f"\nno sample grid: {self.sampling_error}" if self.sampling_error else ""
        return f"{self.summary()}\n{findings_text(self.findings, empty='No findings: the GAN trains healthily.')}{note}"

    def _repr_html_(self) -> str:
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
            f"{findings_html(self.findings, empty='No findings: the GAN trains healthily.')}{imgs}</div>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": repr(self), "text/html": self._repr_html_()}


# -- GAN checks: pure functions of the history rows ---------------------------------------------------
def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _soft_labels(targets: list[tuple[float, float]]) -> bool:
    """Targets that are neither exactly 0 nor exactly 1 somewhere: soft or noisy labels."""
    return any(not (lo in (0.0, 1.0) and hi in (0.0, 1.0)) for lo, hi in targets)


def _for_network(f: Finding, role: str, model_name: str, opt_name: str) -> Finding:
    """A generic training finding re-addressed to one network of the GAN and its optimizer."""
    if f.where == "optimizer":
        where = opt_name
    elif f.where in (None, "model", "input"):
        where = model_name
    else:
        where = f"{model_name}.{f.where}"
    hint = f.hint.replace("optimizer.zero_grad()", f"{opt_name}.zero_grad()").replace(
        "optimizer.step()", f"{opt_name}.step()"
    )
    message = f"{role} ({model_name}, optimizer {opt_name}): {f.message}"
    return dataclasses.replace(
        f, message=message, hint=hint, where=where, evidence={**f.evidence, "network": role}
    )


def _collapse_run(rows: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(first index, length) of the first run of >= COLLAPSE_STEPS rows where D separates outright."""
    start, n = None, 0
    for i, r in enumerate(rows):
        ok = (
            _finite(r["d_real"])
            and _finite(r["d_fake"])
            and r["d_real"] > COLLAPSE_HIGH
            and r["d_fake"] < COLLAPSE_LOW
        )
        if ok:
            start, n = (i, 1) if start is None or n == 0 else (start, n + 1)
        elif n >= COLLAPSE_STEPS:
            return start, n
        else:
            start, n = None, 0
    return (start, n) if start is not None and n >= COLLAPSE_STEPS else None


def check_d_collapse(
    rows: list[dict[str, Any]], gw: GanWatch, found: set[tuple[str, str | None]]
) -> Finding | None:
    """gan-d-collapse: D(x) > 0.95 and D(G(z)) < 0.05 (probabilities, before D's update) for 5 G steps
    in a row. D's loss is evidence, not a condition: soft labels keep it above 0 while D separates
    perfectly (the practitioner's notes). Hints are ranked by what else was observed."""
    run = _collapse_run(rows)
    if run is None:
        return None
    i, n = run
    first, last = rows[i], rows[i + n - 1]
    still = i + n == len(rows)
    d_name, g_name, d_opt, g_opt = gw.names
    hints = []
    if ("grad-not-zeroed", g_opt) in found:
        hints.append(
            f"the generator's optimizer is never zeroed (see grad-not-zeroed): every G update is the running "
            f"sum of all past gradients, G overshoots and D wins; call {g_opt}.zero_grad() before the G loss's "
            "backward() - this is the cause, the hints below only treat the symptom"
        )
    if ("grad-not-zeroed", d_opt) in found:
        hints.append(f"call {d_opt}.zero_grad() before D's backward passes (see grad-not-zeroed)")
    g_ratios = [r["g_ratio"] for r in rows if _finite(r["g_ratio"])]
    if gw.steps == 0:
        hints.append(f"G is never updated: {g_opt}.step() was not called")
    elif g_ratios and median(g_ratios[-PERSIST:]) < 1e-5:
        hints.append(
            f"G barely moves (update/weight ratio {median(g_ratios[-PERSIST:]):.1e}): check that {g_opt} holds G's parameters and its learning rate"
        )
    d_lr, g_lr = last["d_lr"], last["g_lr"]
    if _finite(d_lr) and _finite(g_lr) and g_lr > 0 and d_lr >= LR_RATIO * g_lr:
        hints.append(
            f"D's learning rate is {d_lr / g_lr:.0f}x G's ({d_lr:g} vs {g_lr:g}): lower it (DCGAN uses 2e-4 for both)"
        )
    k = median([r["d_steps"] for r in rows[i : i + n]])
    if k > 1:
        hints.append(f"fewer D steps per G step (now {k:g})")
    if any(r["soft_labels"] for r in rows):
        hints.append(
            "soft/noisy labels are already in use: they keep D's loss above 0 but D still separates "
            "perfectly, so they hide the collapse rather than fix it"
        )
    else:
        hints.append(
            "one-sided label smoothing (real targets 0.9) or soft, noisy labels (real 0.7-1.2, fake 0-0.3)"
        )
    hints.append(
        "instance noise: add Gaussian noise to D's real and fake inputs, annealed to 0 (inference.vc)"
    )
    ranked = "; ".join(f"{j}) {h}" for j, h in enumerate(hints, 1))
    span = "and is still collapsed" if still else f"for {n} G steps"
    return Finding(
        "gan-d-collapse",
        "error" if still else "warning",
        f"the discriminator wins outright from G step {first['step']} {span}: D(x) = {last['d_real']:.3f}, "
        f"D(G(z)) = {last['d_fake']:.3g}, D loss = {last['d_loss']:.3g} (D separates real from fake "
        f"perfectly, so G gets no useful signal)",
        ranked,
        d_name,
        {
            "first_step": first["step"],
            "steps": n,
            "d_real": last["d_real"],
            "d_fake": last["d_fake"],
            "hints": hints,
        },
    )


def check_g_vanishing(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    """gan-g-vanishing: on PERSIST G steps in a row D(G(z)) < 0.05 while the gradient G's loss puts on D's
    logits (`g_signal`, summed over the fakes) is below 1% of its early level (median of the first 5 G
    steps). The saturating loss log(1 - D(G(z))) has gradient D(G(z)) there, so it vanishes once D
    rejects every fake (Goodfellow et al. 2014, section 3); the non-saturating loss has 1 - D(G(z)).
    Read at D's output, the rule does not depend on the scale of G's weights; G's own gradient norm is
    reported as evidence."""
    sig = [r["g_signal"] for r in rows if _finite(r["g_signal"])]
    if len(sig) < 5 + PERSIST:
        return None
    early = median(sig[:5])
    last = rows[-PERSIST:]
    for r in last:
        if not (_finite(r["d_fake_g"]) and r["d_fake_g"] < COLLAPSE_LOW and _finite(r["g_signal"])):
            return None
        if not r["g_signal"] < VANISH_REL * early:
            return None
    r = last[-1]
    norms = [x["g_grad_norm"] for x in rows[:5] if _finite(x["g_grad_norm"])]
    g_early = median(norms) if norms else math.nan
    return Finding(
        "gan-g-vanishing",
        "error",
        f"G's loss puts a gradient of {r['g_signal']:.2g} on D's output at G step {r['step']}, "
        f"{r['g_signal'] / early:.1e} of its early level ({early:.2g}), while D(G(z)) = {r['d_fake_g']:.2g}: D "
        f"rejects every fake and G's loss saturates ({PERSIST} G steps in a row; G's gradient norm "
        f"{g_early:.2g} -> {r['g_grad_norm']:.2g})",
        "use the non-saturating generator loss: BCE(D(G(z)), ones), i.e. maximise log D(G(z)), instead of "
        "minimising log(1 - D(G(z))); and weaken D (see gan-d-collapse)",
        gw.names[1],
        {"signal": r["g_signal"], "early": early, "d_fake_g": r["d_fake_g"], "grad_norm": r["g_grad_norm"]},
    )


def check_mode_collapse(rows: list[dict[str, Any]], gw: GanWatch) -> Finding | None:
    """gan-mode-collapse: the spread (mean pairwise distance) of G's training batch below 10% of the real
    batch's on the last 2 measurements, and either (a) fallen to under half the highest spread seen
    before (G had found diversity and lost it), or (b) under a quarter of the spread of G's samples
    from the fixed, independent noise batch (the batch's examples share their noise). An untrained G
    often starts narrow (5% of the real spread on the ring of Gaussians, measured): without (a) or
    (b) that is not collapse. When G's training batch was not seen, the fixed-noise samples stand in."""
    points = []
    for r in rows:
        batch = r["diversity"] if _finite(r["diversity"]) else r["sample_diversity"]
        if _finite(batch):
            points.append((r["step"], batch, r["sample_diversity"]))
    if len(points) < DIVERSITY_POINTS:
        return None
    last = points[-DIVERSITY_POINTS:]
    if not all(v < DIVERSITY_LOW for _, v, _ in last):
        return None
    before = [v for _, v, _ in points[:-DIVERSITY_POINTS]]
    best = max(before, default=0.0)
    declined = all(v < 0.5 * best for _, v, _ in last)
    shared = all(_finite(s) and v < 0.25 * s for _, v, s in last)
    if not (declined or shared):
        return None
    step, v, s = last[-1]
    if shared and not declined:
        msg = (
            f"G's training batch has {v:.1%} of the real data's spread (mean pairwise distance) at G step {step}, "
            f"while G's samples from independent noise have {s:.0%}: the examples of each batch get the same "
            "noise vector, so G learns one output"
        )
        hint = "draw fresh noise per example inside the loop: z = torch.randn(batch_size, nz) (not randn(1, nz).expand)"
    else:
        msg = (
            f"G's samples lost their diversity: their mean pairwise distance fell from {best:.0%} to {v:.1%} of "
            f"the real data's by G step {step} (below {DIVERSITY_LOW:.0%} on the last {DIVERSITY_POINTS} "
            "measurements): G maps every noise vector to a few outputs"
        )
        hint = (
            "see the sample grid; lower G's learning rate or balance D and G (see the other findings), add "
            "minibatch discrimination / minibatch-stddev to D, or use a Wasserstein loss with gradient penalty "
            "(ganhacks)"
        )
    return Finding(
        "gan-mode-collapse",
        "warning",
        msg,
        hint,
        gw.names[1],
        {
            "diversity": v,
            "highest": best,
            "sample_diversity": s,
            "step": step,
            "shared_noise": shared and not declined,
        },
    )


def _validate(
    D: Any,
    G: Any,
    opt_d: Any,
    opt_g: Any,
    every: int,
    samples_every: int,
    noise: Any,
    n_samples: int,
    real: Any,
) -> None:
    for what, m in (("discriminator", D), ("generator", G)):
        if not isinstance(m, nn.Module):
            raise NbdebugError(f"watch_gan() needs an nn.Module as {what}, got {describe(m)}")
    if D is G:
        raise NbdebugError("discriminator and generator are the same module; pass D first, then G")
    for what, opt, model, other in (("d_optimizer", opt_d, D, G), ("g_optimizer", opt_g, G, D)):
        if not isinstance(opt, torch.optim.Optimizer):
            raise NbdebugError(f"{what} must be a torch.optim.Optimizer, got {describe(opt)}")
        mine = {id(p) for p in model.parameters()}
        theirs = {id(p) for p in (other.parameters())}
        params = [p for g in opt.param_groups for p in g["params"]]
        own = sum(id(p) in mine for p in params)
        if params and own == 0:
            hint = " (D and G's optimizers swapped?)" if any(id(p) in theirs for p in params) else ""
            net = "discriminator" if what == "d_optimizer" else "generator"
            raise NbdebugError(
                f"{what} holds {len(params)} parameters, none of them the {net}'s ({type(model).__name__}){hint}"
            )
    if opt_d is opt_g:
        raise NbdebugError("d_optimizer and g_optimizer are the same optimizer; a GAN needs one per network")
    for what, v in (("every", every), ("samples_every", samples_every), ("n_samples", n_samples)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise NbdebugError(f"{what} must be a positive integer, got {v!r}")
    if noise is not None and not (isinstance(noise, (torch.Tensor, tuple)) or callable(noise)):
        raise NbdebugError(
            f"noise must be a tensor (the fixed noise batch), a tuple of G's arguments or a function n -> noise, "
            f"got {describe(noise)}"
        )
    if isinstance(noise, torch.Tensor) and (noise.dim() < 1 or noise.shape[0] < 1):
        raise NbdebugError(
            f"noise must be a batch with the examples along dim 0, got shape {tuple(noise.shape)}"
        )
    if real is not None and (not isinstance(real, torch.Tensor) or real.dim() < 1 or real.shape[0] < 2):
        raise NbdebugError(f"real must be a tensor of at least 2 real examples (dim 0), got {describe(real)}")


def watch_gan(
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
) -> GanWatch:
    """Watch a GAN loop you write yourself: `with nbdebug.watch_gan(D, G, opt_d, opt_g) as g: ...`.

    `every`: per-layer statistics (update/weight ratios) of each network on its first step and every
    `every`-th step. `samples_every`: every that many G steps, G's output on a fixed noise batch (kept
    in `frames`, the sample grid) and the diversity of G's training batch against the real batch's.
    `noise`: the fixed noise batch (a tensor, or a function n -> noise); by default `n_samples` draws
    shaped like G's first input, from a private generator seeded with `seed` (the user's RNG is not
    consumed). `real`: real examples for the diversity reference (default: the real batches D sees).
    `on_update(gan_watch)`: called during the run at most every `update_interval` s (the live panel).
    `names`: how findings name D, G and their optimizers (the magic passes the notebook's names).
    """
    return GanWatch(
        discriminator,
        generator,
        d_optimizer,
        g_optimizer,
        every=every,
        samples_every=samples_every,
        noise=noise,
        n_samples=n_samples,
        real=real,
        seed=seed,
        on_update=on_update,
        update_interval=update_interval,
        max_frames=max_frames,
        names=names,
    )
