"""`nbdebug.watch`: per-step statistics of the user's own training loop, and what they diagnose.

The user keeps their loop; `watch` sees it through hooks on the model (activations on sampled steps),
on the optimizer (each `step()`), on backward (the loss, and whether gradients were zeroed) and on the
loss functions and data-loader passes (targets, outputs, epochs, evaluation passes). It observes and
never changes the training: same seed, same final weights with and without it (tested).

Results: `Watch.findings` (catalogue codes with evidence and a fix), `Watch.history` (one row per
step), `Watch.epochs` (one row per epoch: loss, wiggle next to batch size, train/val accuracy and loss),
`Watch.layer_stats()` (one row per layer per sampled step). A live view subscribes with `on_update`.
"""

from __future__ import annotations

import html
import math
import weakref
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, withdrawn_html
from .._core.hooks import HookSet
from .._core.tensors import detached
from .checks import BLOCK, RunData, diagnose
from .fit import MIN_EPOCHS, Epoch, best_epoch, epochs_from_frame, fit_findings
from .layout import LayoutProbe
from .leafsampling import EARLY
from .lifecycle import withdrawal_reason
from .live import LiveResults
from .losscalls import BINARY, CLASSIFICATION, CUSTOM, LossCall, describe_call
from .pitfalls import PitfallTracker
from .records import StepRecord, safe
from .rundata import BLOWUP
from .stats import StepMonitor
from .task import ClassCounts, EpochAcc, TaskCounter
from .wiring_checks import WiringTracker, safe_evidence

SHORT_RUN = 50  # steps over which every sampled step is diagnosed: a notebook experiment is named as it runs


class Watch(LiveResults):
    """Context manager returned by `nbdebug.watch`; see the module docstring."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        loss_fn: Any = None,
        *,
        every: int = 10,
        histograms: bool = True,
        bins: int = 30,
        on_update: Callable[[Watch], None] | None = None,
        update_interval: float = 0.5,
        max_samples: int = 400,
    ) -> None:
        _validate(model, optimizer, loss_fn, every, bins)
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.monitor = StepMonitor(
            model, optimizer, every=every, histograms=histograms, bins=bins, max_samples=max_samples
        )
        self.monitor.on_step.append(self._after_step)
        self._wiring = WiringTracker(self.monitor)
        self._init_live(on_update, update_interval)
        self.internal_errors = self.monitor.internal_errors
        self._epochs: list[EpochAcc] = [EpochAcc(0)]
        self._manual_epochs = False
        self._train_loader: Any = None
        self._current_loader: Any = None
        self._loss_calls: dict[str, LossCall] = {}
        self._loss_count = 0
        self._losses_before = 0
        self._task = TaskCounter(BLOCK, loss_fn if isinstance(loss_fn, nn.Module) else None)
        self._leak_step: int | None = None
        self._nonfinite_seen = False
        self._judged = 0  # records judged for urgent findings (blow-up, first NaN) by _after_step
        self._pitfalls = PitfallTracker()  # clips of scaled gradients, log(softmax) zeros, validation losses
        self.layout = LayoutProbe(self.monitor)  # RNN layout, BatchNorm batches, label order, eval dropout

    # -- context -------------------------------------------------------------------------------------
    def __enter__(self) -> Watch:
        self._start(self._attach, "nbdebug.watch(...)")
        return self

    def _attach(self, hooks: HookSet) -> None:
        self.monitor.attach(hooks)
        self._wiring.attach(hooks)
        self.layout.attach(hooks)
        if isinstance(self.loss_fn, nn.Module):
            hooks.forward_pre(self.loss_fn, self._loss_module_pre)
            hooks.forward(self.loss_fn, self._loss_module_post)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop(exc_type, lambda: (self.layout.detached.release(), self.monitor.release()))
        self._diagnose(final=True)
        self._notify(force=True)

    # -- events from intercept -----------------------------------------------------------------------
    def on_backward(self, tensors: tuple[torch.Tensor, ...], phase: str) -> None:
        self.monitor.on_backward(tensors, phase)
        self._wiring.on_backward(tensors, phase)
        self._pitfalls.on_backward(tensors, phase, self.monitor.count + 1)
        self.layout.detached.on_backward(tensors, phase)

    def on_clip(self, kind: str, parameters: list, limit: Any, total_norm: Any) -> None:
        self._pitfalls.on_clip(self.monitor, kind, parameters, limit, total_norm)

    def on_scaler(self, event: str, scaler: Any, *args: Any) -> None:
        self.monitor.amp.on_scaler(event, scaler, *args)

    def on_loader_iter(self, loader: Any) -> None:
        if self._manual_epochs:
            return
        if self._train_loader is not None:
            if self._train_loader() is loader and self.monitor.count > self._epochs[-1].start:
                self._new_epoch()
            return
        # the training loader is the last one iterated with gradients on before the first step
        # (model.training is not required: the eval-mode bug trains in eval mode)
        if torch.is_grad_enabled():
            self._current_loader = weakref.ref(loader)

    @safe
    def _loss_module_pre(self, module: nn.Module, args: tuple) -> None:
        self._losses_before = self._loss_count

    @safe
    def _loss_module_post(self, module: nn.Module, args: tuple, out: Any) -> None:
        """A custom loss module that calls no torch.nn.functional loss: read its (input, target)."""
        if self._loss_count == self._losses_before and len(args) >= 1:
            self.on_loss(CUSTOM, args[0], args[1] if len(args) > 1 else None, out, {})

    def on_loss(self, name: str, input: Any, target: Any, output: Any, kwargs: dict) -> None:
        self._loss_count += 1
        if not isinstance(input, torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        train = torch.is_grad_enabled() and input.requires_grad
        if train:
            self.monitor.end_leaf_forward(input)
        self.layout.on_loss(name, input, target, kwargs, train)
        acc = self._epochs[-1]
        x = detached(input)
        t = detached(target) if isinstance(target, torch.Tensor) else None
        if train and name not in self._loss_calls and name != CUSTOM:
            self._loss_calls[name] = describe_call(name, x, t, input, output, kwargs, self.monitor.count + 1)
        elif not train:
            self._pitfalls.on_eval_loss(name, x, t, input, output, kwargs, self.monitor.count + 1)
        pred = None
        if train:  # labels and predictions per class, fixes for imbalance, per-example loss spread
            step = self.monitor.count + 1
            batch = self.monitor._batch_size  # the model's batch: rows beyond it are positions in a sequence
            self._task.on_loss(name, x, t, output, kwargs, acc.counts, step, self.monitor.sampling, batch)
            pred = self._task.last_pred
            if self._task.last_counted:  # its hits are counted with the epoch's classes: no torch call here
                return acc.add_counted(t.numel())
        correct = n = None
        classify = name in CLASSIFICATION or name == CUSTOM
        if t is not None and classify and x.dim() >= 2 and not t.is_floating_point():
            pred = x.argmax(1) if pred is None else pred
            if pred.shape == t.shape:
                correct, n = (pred == t).sum(), t.numel()
        elif t is not None and name in BINARY and x.shape == t.shape:
            threshold = 0.0 if name.endswith("logits") else 0.5
            correct, n = ((x > threshold) == (t > 0.5)).sum(), t.numel()
        if train:
            if correct is not None:
                acc.train_correct = acc.train_correct + correct
                acc.train_seen += n
        else:
            b = int(x.shape[0]) if x.dim() else 1
            if output.numel() == 1:
                acc.val_loss = acc.val_loss + output.detach().float() * b
                acc.val_seen += b
            if correct is not None:
                acc.val_correct = acc.val_correct + correct
                acc.val_acc_seen += n

    # -- epochs --------------------------------------------------------------------------------------
    def epoch(self) -> None:
        """Mark the end of an epoch, for loops that do not iterate a DataLoader once per epoch.

        Calling it switches off the automatic detection of DataLoader passes for this watch.
        """
        if not self._manual_epochs:
            self._manual_epochs = True
        if self.monitor.count > self._epochs[-1].start:
            self._new_epoch()

    def _new_epoch(self) -> None:
        self._epochs.append(EpochAcc(self.monitor.count))
        self._diagnose()
        self._notify()

    def _after_step(self, monitor: StepMonitor, rec: StepRecord) -> None:
        if self._train_loader is None and self._current_loader is not None:
            self._train_loader = self._current_loader
            self._task.loader_fix(self._train_loader())
        # judge the steps read since the last call (pending.py: values are read in batches, on sampled
        # steps and redraws, so that a non-sampled step adds no device synchronization)
        records = monitor.records
        fresh = records[self._judged : monitor.pending.read_count]
        self._judged = max(self._judged, monitor.pending.read_count)
        first = records[0].loss if records and monitor.pending.read_count else math.nan
        urgent = (
            rec.step <= EARLY  # a short run is diagnosed on its first steps
            or any(math.isfinite(r.loss) and first > 0 and r.loss >= BLOWUP * first for r in fresh)  # blow-up
            or any(r.leaked and r.step == self._first_leak() for r in fresh)
            or (
                any(not math.isfinite(r.loss) for r in fresh)
                and len(monitor.nonfinite_events) == 1
                and not self._nonfinite_seen
            )
        )
        if urgent:
            self._nonfinite_seen = bool(monitor.nonfinite_events)
        # live diagnosis on sampled steps, but never for more than ~5% of the wall time (it reads the
        # whole history, so it gets dearer as the run grows); bugs that matter at once go through now, and
        # so does every sampled step of a short run's first SHORT_RUN steps (the history is short)
        sampled = rec.step in monitor.samples
        if sampled:  # the loss calls queued since the last sampled step are counted with its numbers
            self._task.flush()
        due = sampled and (rec.step <= SHORT_RUN or self._diagnosis_due())
        if urgent or due:
            self._diagnose()
        self._notify()  # (a no-op when a new finding just forced an update: the interval restarts)

    def _first_leak(self) -> int | None:
        if self._leak_step is None:
            self._leak_step = next((r.step for r in self.monitor.records if r.leaked), None)
        return self._leak_step

    # -- diagnosis -----------------------------------------------------------------------------------
    def _run_data(self, final: bool = False) -> RunData:
        self._task.flush()  # the loss calls queued since the last diagnosis, counted before periods are taken
        periods, kind = self._periods()
        run = RunData.from_monitor(
            self.monitor,
            list(self._loss_calls.values()),
            final,
            periods=periods,
            period_kind=kind,
            task=self._task.evidence(*self._class_periods(), periods[-1] if periods else None),
            **self._pitfalls.run_fields(),
            layout=self.layout.evidence(),
        )
        run.wiring = safe_evidence(self._wiring, self.internal_errors, final)
        return run

    def _class_periods(self) -> tuple[list[ClassCounts], str]:
        """Class counts per complete epoch (from the first epoch boundary on), else per complete block of
        steps; once the run is over, the last epoch or block counts even if it is short."""
        over = not self.running
        if len(self._epochs) >= 2 or self._manual_epochs:
            last = self._epochs[-1]
            return [e.counts for e in self._epochs[:-1]] + (
                [last.counts] if over and last.counts.preds is not None else []
            ), "epoch"
        n = self.monitor.count
        blocks = [
            self._task.blocks.get(k, ClassCounts()) for k in range(n // BLOCK + (over and n % BLOCK > 0))
        ]
        return blocks, "block"

    def _periods(self) -> tuple[list[tuple[int, int]], str]:
        bounds = [e.start for e in self._epochs]
        n = self.monitor.count
        if len(bounds) >= 3:  # at least two complete epochs plus the current one
            periods = [(a + 1, b) for a, b in zip(bounds, bounds[1:])]
            if not self.running and n > bounds[-1]:
                periods.append((bounds[-1] + 1, n))
            return periods, "epoch"
        return [(a + 1, a + BLOCK) for a in range(0, n - BLOCK + 1, BLOCK)], "block"

    def _diagnose(self, final: bool = False) -> None:
        seen: list[RunData] = []

        def checks() -> list:
            run = self._run_data(final)
            seen.append(run)
            found = diagnose(run) + self._fit_findings() + self._extra_findings()
            self._partial = bool(run.extra.get("partial"))
            return found

        def why(f: Any) -> str:
            return withdrawal_reason(f, seen[-1]) if seen else ""

        self._run_checks(checks, lambda: self.monitor.count, why)

    def _extra_findings(self) -> list[Finding]:
        """Findings a subclass adds to each diagnosis (the ranks compared, `monitor/distributed.py`)."""
        return []

    @property
    def steps(self) -> int:
        return self.monitor.count

    @property
    def history(self):
        """One row per optimizer step: step, epoch, loss, grad_norm, lr, batch_size, backwards, ..."""
        import pandas as pd

        cols = ["step", "epoch", "loss", "grad_norm", "lr", "batch_size", "backwards", "eval_mode", "leaked"]
        rows = [asdict(r) for r in self.monitor.steps]
        frame = pd.DataFrame(rows, columns=[*cols, "time"]).drop(columns="time")
        if len(frame):
            starts = [e.start for e in self._epochs]
            # epoch i holds the steps after its start (steps completed when it began)
            frame["epoch"] = np.searchsorted(np.asarray(starts[1:]), frame["step"].to_numpy(), side="left")
        return frame[cols]

    @property
    def epochs(self):
        """One row per epoch: loss (mean), loss_std (the wiggle) next to batch_size, train/val accuracy
        and val loss with the gap. Loops without epochs get one row (call `w.epoch()` to mark them)."""
        import pandas as pd

        self._task.flush()  # (the queued loss calls' hits are the training accuracy's)
        h = self.history
        groups = dict(tuple(h.groupby("epoch"))) if len(h) else {}
        rows = []
        for i, e in enumerate(self._epochs):
            part = groups.get(i, h.iloc[0:0])
            if part.empty and e.val_seen == 0:
                continue
            train_acc = e.train_accuracy()
            val_acc = float(e.val_correct) / e.val_acc_seen if e.val_acc_seen else math.nan
            rows.append(
                {
                    "epoch": i,
                    "steps": len(part),
                    "loss": part["loss"].mean() if len(part) else math.nan,
                    "loss_std": part["loss"].std() if len(part) > 1 else math.nan,
                    "batch_size": int(part["batch_size"].median()) if len(part) else 0,
                    "train_acc": train_acc,
                    "val_loss": float(e.val_loss) / e.val_seen if e.val_seen else math.nan,
                    "val_acc": val_acc,
                    "acc_gap": train_acc - val_acc,
                    "val_n": e.val_acc_seen,
                }
            )
        cols = [
            "epoch",
            "steps",
            "loss",
            "loss_std",
            "batch_size",
            "train_acc",
            "val_loss",
            "val_acc",
            "acc_gap",
            "val_n",
        ]
        return pd.DataFrame(rows, columns=cols)

    def _complete_epochs(self) -> list[Epoch]:
        """Epochs with validation numbers, the one still running left out. Read from the accumulators and
        the step records directly (no DataFrame): it runs with every diagnosis."""
        accs = self._epochs[:-1] if self.running else self._epochs
        if sum(e.val_seen > 0 or e.val_acc_seen > 0 for e in accs) < MIN_EPOCHS:
            return []  # no advice before MIN_EPOCHS epochs with validation: skip the work
        self._task.flush()  # (the queued loss calls' hits are the training accuracy's)
        steps = self.monitor.steps
        bounds = [e.start for e in self._epochs] + [len(steps) + 10**9]
        out = []
        for i, e in enumerate(accs):
            if not (e.val_seen or e.val_acc_seen):
                continue
            losses = [r.loss for r in steps if bounds[i] < r.step <= bounds[i + 1] and math.isfinite(r.loss)]
            out.append(
                Epoch(
                    epoch=i,
                    loss=sum(losses) / len(losses) if losses else math.nan,
                    train_acc=e.train_accuracy(),
                    val_loss=float(e.val_loss) / e.val_seen if e.val_seen else math.nan,
                    val_acc=float(e.val_correct) / e.val_acc_seen if e.val_acc_seen else math.nan,
                    val_n=e.val_acc_seen,
                )
            )
        return out

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the lowest validation loss (else the highest validation accuracy); None without
        a validation pass. The overfitting advice suggests stopping there."""
        return best_epoch(
            epochs_from_frame(self.epochs[self.epochs["epoch"] < len(self._epochs) - self.running])
        )

    def _fit_findings(self) -> list[Finding]:
        """The train/validation advice (`monitor/fit.py`), from complete epochs."""
        epochs = self._complete_epochs()
        if not epochs:  # (before the walk over the modules below: a diagnosis within the first epoch)
            return []
        dropout = any(  # training mode behaves differently: dropout, or batch norm on training batches
            (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
            or isinstance(m, nn.modules.batchnorm._BatchNorm)
            for m in self.model.modules()
        )
        last = self.monitor.samples[max(self.monitor.samples)] if self.monitor.samples else []
        ratios = sorted(s.update_ratio for s in last if math.isfinite(s.update_ratio))
        ratio = ratios[len(ratios) // 2] if ratios else None
        return fit_findings(epochs, dropout=dropout, update_ratio=ratio)

    def layer_stats(self, last: bool = False):
        """One row per layer per sampled step (activation mean/std/zero and dead fraction, saturation,
        gradient norm, weight norm, update/weight ratio). `last=True`: only the latest sample."""
        return self.monitor.layer_stats(last=last)

    def histograms(self, layer: str, kind: str = "activation") -> list[tuple[int, float, float, list[int]]]:
        """(step, low, high, counts) of `layer`'s activations or gradients at each sampled step."""
        return self.monitor.histogram_series(layer, kind)

    def layers(self) -> list[str]:
        """Layers with statistics, in forward order."""
        return self.monitor.layers()

    # -- display -------------------------------------------------------------------------------------
    def summary(self) -> str:
        h = self.history
        state = "running" if self.running else "finished"
        if self.exc_type is not None:
            state = f"stopped by {self.exc_type.__name__}"
        loss = h["loss"].dropna()
        last = f", loss {loss.iloc[0]:.4g} -> {loss.iloc[-1]:.4g}" if len(loss) else ""
        n_ep = len(self.epochs)
        return f"Watch ({state}): {self.steps} steps, {n_ep} epoch(s){last}"

    def _html(self) -> str:
        from .._core.plot import figure_png, png_html
        from .plot import loss_figure

        img = ""
        if self.steps:
            fig = loss_figure(self)
            img = png_html(figure_png(fig), alt="loss curve")
        ep = self.epochs
        table = ep.to_html(index=False, float_format=lambda v: f"{v:.4g}") if len(ep) else ""
        return (
            f'<div class="nbdebug-watch"><b>{html.escape(self.summary())}</b>'
            f"{findings_html(self.findings, empty='No findings: the run looks healthy.')}"
            f"{withdrawn_html(self.withdrawn)}{img}{table}</div>"
        )


def _validate(model: Any, optimizer: Any, loss_fn: Any, every: int, bins: int) -> None:
    if not isinstance(model, nn.Module):
        raise NbdebugError(f"watch() needs an nn.Module as model, got {describe(model)}")
    if optimizer is not None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise NbdebugError(f"optimizer must be a torch.optim.Optimizer, got {describe(optimizer)}")
    if loss_fn is not None and not callable(loss_fn):
        raise NbdebugError(f"loss_fn must be an nn.Module or a function, got {describe(loss_fn)}")
    if not isinstance(every, int) or every < 1:
        raise NbdebugError(f"every must be a positive number of steps, got {every!r}")
    if not isinstance(bins, int) or bins < 2:
        raise NbdebugError(f"bins must be an integer >= 2, got {bins!r}")


def watch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Any = None,
    *,
    every: int = 10,
    histograms: bool = True,
    bins: int = 30,
    on_update: Callable[[Watch], None] | None = None,
    update_interval: float = 0.5,
    max_samples: int = 400,
) -> Watch:
    """Watch a training loop you write yourself: `with nbdebug.watch(model, opt) as w: ...`.

    `every`: layer statistics (activations, gradients, update/weight ratios) on the first 5 steps and
    every `every`-th step (every layer's activation numbers on the first and every `every`-th, the activation
    layers' on steps 2-5); the loss, gradient norm and zero_grad check run on every step.
    `histograms`: keep activation/gradient histograms (`bins` bins) on the first step and every `every`-th
    (binned when asked for: `w.histograms`).
    `loss_fn`: the loss module or function; optional, since losses are seen through
    `torch.nn.functional` whichever way they are called. `on_update(watch)`: called during the run
    at most every `update_interval` seconds (the live panel uses it).
    Without an optimizer, `watch` adopts the optimizers that step the model's parameters (a framework's,
    or yours); with none, a backward pass followed by a hand-written update of the weights is a step, and
    one followed by no update at all (an adversarial example, a saliency map) is analysis, not training.
    """
    from ..integrations import watch_class  # Lightning / Hugging Face adapters; imports no framework
    from .distributed import DistributedWatch, distributed_world  # each rank of a DDP run

    base = DistributedWatch if distributed_world() is not None else Watch
    return watch_class(model, base)(
        model, optimizer, loss_fn, every=every, histograms=histograms, bins=bins, on_update=on_update,
        update_interval=update_interval, max_samples=max_samples,
    )  # fmt: skip
