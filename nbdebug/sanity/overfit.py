"""Overfit a tiny subset: the first sanity check before training on the full data (CS231n).

`overfit` takes `n` examples (stratified by class), turns regularization off (dropout, weight decay),
and trains the live model on them until the loss is near zero or the budget runs out. It reads the
examples as a real loop would: from a Dataset (or a DataLoader's), through `__getitem__` again at every
epoch, so a label that changes between two reads of the same index is named (`unstable-labels`). A network that
cannot fit 20 examples has a bug; the verdict ranks the likely causes from the shape of the loss curve.
The model's weights, optimizer state, mode and RNG are restored afterwards - on success, on Stop, on an
exception and on KeyboardInterrupt - unless `keep=True`.
"""

from __future__ import annotations

import html
import inspect
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._core.data import model_device
from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import preserved
from .._core.result import Result
from . import loss_kinds as L
from .forward import regularization_off, require_real_weights, run_forward
from .subset import Subset, select

__all__ = ["OverfitResult", "overfit"]

DEFAULT_TARGET = 0.05  # CATALOGUE["cannot-overfit"]
DEFAULT_LR = 3e-3
UNSTABLE_STOP = 5  # epochs in which some label changed: the verdict is known, stop training
HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "grad_norm", "seconds"]


@dataclass(repr=False)
class OverfitResult(Result):
    """The run so far (the panel reads it while training) and, once `done`, the verdict."""

    n: int
    target: float
    optimizer: str  # what was used, e.g. "Adam(lr=0.003) - default"
    turned_off: list[str]
    max_epochs: int
    time_budget: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    passed: bool = False
    done: bool = False
    stopped: bool = False  # the user pressed Stop (or should_stop() returned True)
    interrupted: bool = False  # KeyboardInterrupt; the model was restored before it propagated
    error: str | None = None  # an exception from the model or the loss ended the run (model restored)
    kept: bool = False  # keep=True: the trained weights were left in the model
    elapsed: float = 0.0

    @property
    def history(self) -> pd.DataFrame:
        """Loss (and accuracy where it applies) per epoch; `epoch` counts from 1."""
        return pd.DataFrame(self.rows, columns=HISTORY_COLUMNS)

    @property
    def final_loss(self) -> float:
        return float(self.rows[-1]["loss"]) if self.rows else math.nan

    @property
    def epochs(self) -> int:
        return len(self.rows)

    def verdict(self) -> str:
        if not self.done:
            return f"running: epoch {self.epochs}, loss {self.final_loss:.4g}"
        restored = "trained weights kept" if self.kept else "model restored"
        if self.interrupted:
            return f"interrupted after {self.epochs} epochs ({restored})"
        if self.error:
            return f"failed after {self.epochs} epochs: {self.error} ({restored})"
        how = "stopped by the user" if self.stopped and not self.passed else ""
        state = "passed" if self.passed else "cannot overfit"
        extra = f", {how}" if how else ""
        return (
            f"{state}: loss {self.final_loss:.4g} (target {self.target:.3g}) on {self.n} examples after "
            f"{self.epochs} epochs, {self.elapsed:.1f} s{extra}"
        )

    def summary(self) -> str:
        return self.verdict()

    def to_text(self) -> str:
        off = f"; turned off: {', '.join(self.turned_off)}" if self.turned_off else ""
        return f"nbdebug.overfit {self.verdict()}\noptimizer: {self.optimizer}{off}\n{findings_text(self.findings, '')}".rstrip()

    def _html_key(self) -> Hashable:
        return (self.done, self.epochs)

    def to_html(self, figure: bool = True) -> str:
        """Static HTML: the verdict, the optimizer, the loss curve (unless `figure=False`), the findings."""
        return super().to_html() if figure else self._html(figure=False)

    def _html(self, figure: bool = True) -> str:
        colour = "#2e7d32" if self.passed else ("#555" if not self.done else "#c62828")
        img = ""
        if figure and self.rows:
            from .._core.plot import figure_png, png_html
            from .plot import overfit_figure

            img = png_html(figure_png(overfit_figure(self)), alt="overfit loss curve")
        off = f"<br>turned off: {html.escape(', '.join(self.turned_off))}" if self.turned_off else ""
        return (
            f'<div class="nbdebug-overfit"><b style="color:{colour}">{html.escape(self.verdict())}</b>'
            f"<br>optimizer: {html.escape(self.optimizer)}{off}{img}"
            f"{findings_html(self.findings, 'The model can fit the subset.') if self.done else ''}</div>"
        )


def _make_optimizer(
    model: nn.Module, optimizer: Any, lr: float | None
) -> tuple[torch.optim.Optimizer, str, list[str]]:
    """A fresh optimizer of the user's class and learning rate, weight decay 0; or Adam by default."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise NbdebugError("the model has no trainable parameter (all requires_grad=False): nothing to fit")
    if optimizer is None:
        rate = DEFAULT_LR if lr is None else lr
        how = "default" if lr is None else "default optimizer, learning rate given"
        return torch.optim.Adam(params, lr=rate), f"Adam(lr={rate:g}) - {how}", []
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        cls, hyper = optimizer, {}
        source = "class given"
    elif isinstance(optimizer, torch.optim.Optimizer):
        cls = type(optimizer)
        hyper = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
        source = "from your optimizer"
    else:
        raise NbdebugError(
            f"optimizer must be a torch.optim.Optimizer or its class, got {describe(optimizer)}"
        )
    accepted = set(inspect.signature(cls.__init__).parameters)
    hyper = {k: v for k, v in hyper.items() if k in accepted and k != "params"}
    off = []
    if hyper.get("weight_decay"):
        off.append(f"weight_decay={hyper['weight_decay']:g}")
        hyper["weight_decay"] = 0.0
    if lr is not None:
        hyper["lr"] = lr
        source = "learning rate given"
    if "lr" not in hyper and "lr" in accepted:
        hyper["lr"] = DEFAULT_LR
    hyper.pop("differentiable", None)
    rate = hyper.get("lr")
    rate_s = f"{float(rate):g}" if rate is not None else "default"
    return cls(params, **hyper), f"{cls.__name__}(lr={rate_s}) - {source}", off


def _accuracy(kind: str | None, out: Any, target: Any) -> float:
    if not isinstance(out, torch.Tensor) or not isinstance(target, torch.Tensor):
        return math.nan
    with torch.no_grad():
        if kind in L.CLASSIFICATION and out.dim() >= 2 and not target.dtype.is_floating_point:
            return float((out.argmax(1) == target).float().mean())
        if kind in L.BINARY and out.shape == target.shape:
            pred = out > (0.0 if kind == "bce_logits" else 0.5)
            return float((pred == (target > 0.5)).float().mean())
    return math.nan


def _contradicting_labels(inputs: tuple[torch.Tensor, ...], target: torch.Tensor | None) -> int:
    """Number of identical inputs in the subset that carry different labels."""
    if target is None or target.dim() != 1:
        return 0
    seen: dict[bytes, Any] = {}
    clashes = 0
    flat = torch.cat([x.reshape(x.shape[0], -1).float() for x in inputs], dim=1).cpu()
    for row, label in zip(flat, target.tolist()):
        key = row.numpy().tobytes()
        if key in seen and seen[key] != label:
            clashes += 1
        seen.setdefault(key, label)
    return clashes


def _unstable_labels(sub: Subset) -> Finding:
    """Labels of the same dataset index that differ between two reads of it."""
    c = sub.changes[0]
    shown = "; ".join(f"[{x.index}]: {x.first!r} then {x.later!r}" for x in sub.changes[:5])
    return Finding(
        "unstable-labels",
        "error",
        f"{sub.source} returned a different label for the same index on different reads: "
        f"{len(sub.changed)} of {len(sub.indices)} examples changed label over {sub.reads} reads "
        f"({shown}). A model cannot fit labels that change under it, and the real training loop reads "
        f"the data the same way",
        f"make {sub.source} give index i the same label on every read (dataset[{c.index}] gave {c.first!r}, "
        f"then {c.later!r}): a random label, label noise or an augmentation applied to the target belongs "
        "nowhere in it; augment the input only (transform=, not target_transform=)",
        where="data",
        evidence={
            "indices": [x.index for x in sub.changes],
            "first": [x.first for x in sub.changes],
            "later": [x.later for x in sub.changes],
            "changed": len(sub.changed),
            "reads": sub.reads,
        },
    )


def _diagnose(result: OverfitResult, contradictions: int, first_grad_norm: float, sub: Subset) -> Finding:
    """Rank the likely causes of a failed overfit from the shape of the loss curve."""
    losses = [r["loss"] for r in result.rows]
    first, last = losses[0], losses[-1]
    best = min(losses)
    causes: list[tuple[float, str]] = []
    if sub.changed:
        causes.append(
            (11.0,
             f"{len(sub.changed)} of {result.n} examples got a different label on a later read from "
             f"{sub.source} (see unstable-labels): the targets move while the model fits them")
        )  # fmt: skip
    if contradictions:
        causes.append(
            (
                10.0,
                f"{contradictions} identical inputs in the subset carry different labels: no model can fit them",
            )
        )
    if not math.isfinite(last):
        causes.append(
            (9.0, "the loss became NaN/Inf: the learning rate is too high or the loss takes log(0)")
        )
    finite = [v for v in losses if math.isfinite(v)]
    peak = max(finite) if finite else math.nan
    spiked = len(finite) >= 2 and peak > 2 * first
    if spiked:
        causes.append(
            (8.5,
             f"the loss blew up to {peak:.4g} (from {first:.4g}) before settling at {last:.4g}: the learning rate "
             "is too high (a blow-up can also kill ReLU units for good); lower it 10x")
        )  # fmt: skip
    flat = len(losses) >= 3 and last > 0.95 * first and not spiked
    rises = sum(1 for a, b in zip(losses, losses[1:]) if b > a * 1.02)
    noisy = len(losses) >= 5 and rises / (len(losses) - 1) > 0.3
    if flat:
        why = "no gradient reaches the weights" if first_grad_norm < 1e-8 else "the learning rate is too low"
        causes.append(
            (8.0 if first_grad_norm < 1e-8 else 6.0,
             f"the loss stayed flat from the start ({first:.4g} -> {last:.4g}, gradient norm {first_grad_norm:.3g}): "
             f"{why}, or the output is cut off from the inputs (detach, frozen layers)")
        )  # fmt: skip
    if noisy:
        causes.append(
            (7.0 if flat else 5.0,
             f"the loss is noisy: it rose in {rises} of {len(losses) - 1} epochs: the learning rate is too high")
        )  # fmt: skip
    if not flat and not spiked and math.isfinite(last):
        tail = losses[max(0, int(len(losses) * 0.8)) :]
        plateau = len(tail) >= 2 and (tail[0] - tail[-1]) < 0.01 * max(tail[0], 1e-12)
        desc = "plateaued" if plateau else "still decreasing when the budget ran out"
        score = 4.0 if plateau else 3.0
        causes.append(
            (score,
             f"the loss decreased ({first:.4g} -> {best:.4g}) but {desc}: "
             + ("the model lacks capacity or the learning rate is too high to settle; try a lower learning rate "
                "or a larger model" if plateau else "raise the learning rate or the epoch/time budget"))
        )  # fmt: skip
    causes.sort(key=lambda c: -c[0])
    ranked = [c for _, c in causes]
    message = (
        f"the loss on {result.n} examples is {last:.4g} after {result.epochs} epochs ({result.elapsed:.1f} s), "
        f"above the target {result.target:.3g}. Most likely: {ranked[0] if ranked else 'unknown'}"
    )
    others = "; ".join(f"({i}) {c}" for i, c in enumerate(ranked[1:], start=2))
    hint = "fix the most likely cause first and run overfit again" + (
        f"; other candidates, in order: {others}" if others else ""
    )
    return Finding(
        "cannot-overfit",
        "error",
        message,
        hint,
        where="training",
        evidence={"causes": ranked, "first_loss": first, "final_loss": last, "best_loss": best},
    )


def overfit(
    model: nn.Module,
    data: Any,
    loss_fn: Callable,
    n: int = 20,
    *,
    optimizer: Any = None,
    lr: float | None = None,
    max_epochs: int = 500,
    time_budget: float = 30.0,
    target: float | None = None,
    batch_size: int | None = None,
    keep: bool = False,
    stratify: bool = True,
    seed: int = 0,
    callback: Callable[[OverfitResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> OverfitResult:
    """Train `model` on `n` examples of `data` until the loss is below `target` or the budget runs out.

    `optimizer`: the user's optimizer (its class and hyper-parameters are reused on a fresh instance, with
    weight decay 0) or an optimizer class; default Adam(lr=3e-3). `lr` overrides the learning rate.
    `target`: default 0.05 for classification losses, else 5% of the first epoch's loss. `batch_size`:
    default all `n` at once (one step per epoch). `callback(result)` is called after every epoch (the
    panel redraws from it); `should_stop()` is polled every epoch (the panel's Stop button).
    The model (weights, optimizer state, mode, buffers, RNG) is restored unless `keep=True`.
    """
    require_real_weights(model)
    if n < 1:
        raise NbdebugError(f"n must be at least 1, got {n}")
    device = model_device(model)
    kind = L.loss_kind(loss_fn)
    user_opts = (optimizer,) if isinstance(optimizer, torch.optim.Optimizer) else ()
    result: OverfitResult | None = None
    trained_buffers: dict[str, torch.Tensor] = {}
    bs = n if batch_size is None else max(1, min(batch_size, n))
    gen = torch.Generator().manual_seed(seed)
    with preserved(model, weights=not keep, grads=True, optimizers=user_opts, rng=True) as saved:
        sub = select(
            data, n, stratify, device
        )  # inside: a shuffling loader or a transform draws random numbers
        inputs, y = sub.inputs, sub.target
        contradictions = _contradicting_labels(inputs, y)
        torch.manual_seed(seed)
        turned_off = regularization_off(model)
        opt, opt_desc, off = _make_optimizer(model, optimizer, lr)
        needs_closure = isinstance(opt, torch.optim.LBFGS)
        turned_off += off
        result = OverfitResult(n, math.nan, opt_desc, turned_off, max_epochs, time_budget, kept=keep)
        # validate once, with clear errors, before the loop
        out = run_forward(model, inputs, {})
        L.validate_target(kind, out, y, loss_fn)
        first_loss = L.call_loss(loss_fn, out, y)
        if kind is None:
            kind = L.kind_from_graph(first_loss)
        if not first_loss.requires_grad:
            raise NbdebugError(
                "the loss has no autograd graph: nothing connects it to the model's parameters (run "
                "nbdebug.check to see which layer is detached)"
            )
        if target is None:
            target = (
                DEFAULT_TARGET if kind in L.CLASSIFICATION + L.BINARY else 0.05 * float(first_loss.detach())
            )
        result.target = float(target)
        del out, first_loss
        start = time.perf_counter()
        first_grad_norm = math.nan
        try:
            for epoch in range(1, max_epochs + 1):
                if epoch > 1:  # as the real loop does: every epoch reads the examples again
                    inputs, y = sub.read()
                perm = torch.randperm(n, generator=gen) if bs < n else torch.arange(n)
                total, correct, count, gnorm = 0.0, 0.0, 0, 0.0
                for i in range(0, n, bs):
                    idx = perm[i : i + bs].to(device)
                    xb, yb = tuple(x[idx] for x in inputs), (y[idx] if y is not None else None)
                    opt.zero_grad(set_to_none=True)
                    out = model(*xb)
                    loss = L.call_loss(loss_fn, out, yb)
                    loss.backward()
                    if needs_closure:  # LBFGS re-evaluates the loss itself

                        def closure(xb: tuple = xb, yb: Any = yb) -> torch.Tensor:
                            opt.zero_grad(set_to_none=True)
                            again = L.call_loss(loss_fn, model(*xb), yb)
                            again.backward()
                            return again

                    if i + bs >= n:  # last step of the epoch: its gradient norm goes in the history
                        grads = [
                            p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None
                        ]
                        gnorm = float(torch.stack(grads).norm()) if grads else 0.0
                    opt.step(closure) if needs_closure else opt.step()
                    k = len(idx)
                    total += float(loss.detach()) * k
                    acc = _accuracy(kind, out, yb)
                    correct += acc * k
                    count += k
                epoch_loss = total / count
                if epoch == 1:
                    first_grad_norm = gnorm
                result.rows.append(
                    {
                        "epoch": epoch,
                        "loss": epoch_loss,
                        "accuracy": correct / count,
                        "grad_norm": gnorm,
                        "seconds": time.perf_counter() - start,
                    }
                )
                result.elapsed = time.perf_counter() - start
                if epoch_loss <= result.target:
                    result.passed = True
                if callback is not None:
                    callback(result)
                if result.passed or not math.isfinite(epoch_loss):
                    break
                if should_stop is not None and should_stop():
                    result.stopped = True
                    break
                if result.elapsed > time_budget or sub.epochs_with_changes >= UNSTABLE_STOP:
                    break
        except BaseException as e:  # KeyboardInterrupt (kernel interrupt) or an error in the user's code
            result.interrupted = isinstance(e, KeyboardInterrupt)
            result.error = None if result.interrupted else f"{type(e).__name__}: {e}"
            result.done = True
            if not keep:
                saved.restore()  # weights back before the panel shows the partial result
            if callback is not None:
                callback(result)
            raise
        if sub.changed:
            result.findings.append(_unstable_labels(sub))
        if not result.passed:
            result.findings.append(_diagnose(result, contradictions, first_grad_norm, sub))
        result.done = True
        trained_buffers = {k: b.detach().clone() for k, b in model.named_buffers()} if keep else {}
    if trained_buffers:  # keep=True: BatchNorm statistics go with the trained weights
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in trained_buffers and b.shape == trained_buffers[k].shape:
                    b.copy_(trained_buffers[k])
    if callback is not None:
        callback(result)
    return result
