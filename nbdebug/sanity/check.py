"""Sanity checks before training: one forward/backward pass that names the bug, and gradient checking.

`check` runs one batch through the model with regularization off and reports, as findings, what the
CS231n notes ask to verify before any training: the initial loss against chance level, loss-function
pitfalls (softmax before cross-entropy, sigmoid before BCEWithLogits, silent target broadcasting),
gradient flow, input scale and activation health. `gradcheck` compares analytic with numerical gradients
in float64 on a copy. Neither changes the model: mode, weights, gradients, buffers and RNG come back.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._core.classes import initial_loss_severity
from .._core.data import model_device, split_batch, to_device
from .._core.errors import NbdebugError
from .._core.findings import Finding, findings_html, worst
from .._core.hooks import HookSet, preserved
from .._core.loss_space import describe, judge, log_of_softmax
from .._core.result import Result
from .._core.wiring import hidden_grads, one_pass_findings
from . import loss_kinds as L
from .forward import (
    Activations,
    first_batch,
    input_findings,
    regularization_off,
    require_real_weights,
    run_forward,
)


@dataclass(repr=False)
class CheckReport(Result):
    """What `check` found on one batch; `findings` is the verdict, the frames are the evidence."""

    no_findings = "No findings: ready to train."

    loss: float
    expected_loss: float | None
    loss_kind: str | None
    num_classes: int | None
    findings: list[Finding]
    gradients: pd.DataFrame  # one row per parameter: name, shape, requires_grad, grad_norm, ...
    activations: pd.DataFrame  # one row per leaf module called: name, type, shape, mean, std, ...
    inputs: pd.DataFrame  # one row per float input tensor: mean, std, min, max
    turned_off: list[str] = field(default_factory=list)
    regularization: pd.DataFrame | None = None  # strength, loss (when a regularization knob was given)

    @property
    def passed(self) -> bool:
        """True when no finding of severity warning or error was raised."""
        return worst(self.findings) not in ("error", "warning")

    def to_frame(self) -> pd.DataFrame:
        """The findings as a DataFrame: code, severity, where, message, hint."""
        cols = ["code", "severity", "where", "message", "hint"]
        return pd.DataFrame([{c: getattr(f, c) for c in cols} for f in self.findings], columns=cols)

    def summary(self) -> str:
        exp = f" (chance level {self.expected_loss:.4g})" if self.expected_loss is not None else ""
        kind = L.NAMES.get(self.loss_kind or "", "loss")
        off = f"; turned off: {', '.join(self.turned_off)}" if self.turned_off else ""
        return f"{kind} at initialization: {self.loss:.4g}{exp}{off}"

    def to_text(self) -> str:
        return f"nbdebug.check: {super().to_text()}"

    def _html(self) -> str:
        grads = self.gradients[["name", "shape", "requires_grad", "grad_norm", "weight_norm", "ratio"]]
        table = grads.to_html(index=False, float_format=lambda v: f"{v:.3g}", classes="nbdebug-table")
        from .._core.plot import figure_png, png_html
        from .plot import gradient_norms_figure

        img = png_html(figure_png(gradient_norms_figure(self), dpi=80), alt="gradient norms per parameter")
        return (
            '<div class="nbdebug-check">'
            f"<b>nbdebug.check</b>: {html.escape(self.summary())}"
            f"{findings_html(self.findings, self.no_findings)}"
            f"<details><summary>per-parameter gradient norms</summary>{img}{table}</details></div>"
        )


def _ends_with(out: torch.Tensor, *names: str) -> bool:
    return out.grad_fn is not None and out.grad_fn.name().startswith(names)


def _space_findings(kind: str, out: torch.Tensor, target: Any, ignore: int) -> list[Finding]:
    """The classification output's space (`_core/loss_space.py`): probabilities, raw scores given to
    NLLLoss, or a (log-)softmax over the batch instead of the classes."""
    loss = "nll_loss" if kind == "nll" else "cross_entropy"
    space = judge(loss, out, target, ignore)
    if space is None:
        return []
    if space.code != "softmax-before-ce":
        message, hint = describe(space, loss)
        return [Finding(space.code, "error", message, hint, where="model output", evidence=space.evidence)]
    fix = (
        "replace the final Softmax with LogSoftmax(dim=1)"
        if kind == "nll"
        else "remove the final Softmax and feed the raw logits to CrossEntropyLoss"
    )
    return [
        Finding(
            "softmax-before-ce",
            "error",
            f"{L.NAMES[kind]} is given probabilities: every row of the model output is non-negative and sums "
            f"to 1, so the loss applies (log-)softmax a second time and its gradients shrink",
            f"{fix}; apply softmax only to read probabilities at inference",
            where="model output",
            evidence=space.evidence,
        )
    ]


def _log_softmax_finding(loss: torch.Tensor) -> Finding | None:
    """log-softmax-unstable: a torch.log of a softmax output holding exact zeros (read before backward)."""
    probs = log_of_softmax(loss)
    if probs is None:
        return None
    zeros = int((probs.detach() == 0).sum())
    if not zeros:
        return None
    return Finding(
        "log-softmax-unstable",
        "error",
        f"torch.log(softmax(x)) in the loss: {zeros} of {probs.numel()} softmax probabilities underflowed to "
        "exactly 0, so the log is -inf there and the gradient NaN",
        "use F.log_softmax(x, dim=...) (or nn.LogSoftmax) instead of log(softmax(x))",
        where="loss",
        evidence={"zeros": zeros, "size": probs.numel()},
    )


def _loss_findings(kind: str | None, out: Any, target: Any, ignore: int | None = None) -> list[Finding]:
    """Loss-function pitfalls read from the output values and the autograd node that produced them.
    `ignore`: the loss's ignore_index when `out` is its input; None when the kind was read off the loss's
    graph (a custom loss may transform `out` first: only probabilities are then conclusive)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or not out.numel():
        return []
    o = out.detach().float()
    found = []
    if kind in L.CLASSIFICATION:
        space = _space_findings(kind, out, target, -100 if ignore is None else ignore)
        found += [f for f in space if ignore is not None or f.code == "softmax-before-ce"]
    if kind == "bce_logits" and bool((o >= 0).all()) and bool((o <= 1).all()) and _ends_with(out, "Sigmoid"):
        found.append(
            Finding(
                "sigmoid-before-bce-logits",
                "error",
                "BCEWithLogitsLoss is given values already squashed to [0, 1] by a final sigmoid: it applies "
                "a second sigmoid, so predictions can never go below 0.5 and the loss cannot reach zero",
                "remove the final Sigmoid from the model (keep BCEWithLogitsLoss), and apply torch.sigmoid "
                "only when reading probabilities",
                where="model output",
                evidence={"min": float(o.min()), "max": float(o.max())},
            )
        )
    if kind == "bce" and _ends_with(out, "Sigmoid"):
        found.append(
            Finding(
                "sigmoid-bceloss",
                "info",
                "the model ends in a Sigmoid feeding BCELoss: correct, but log(sigmoid(x)) loses precision "
                "for large |x| and BCELoss clamps its log to -100",
                "drop the final Sigmoid and use BCEWithLogitsLoss, which fuses both with the log-sum-exp trick",
                where="model output",
            )
        )
    if (
        kind in ("mse", "l1", "huber")
        and isinstance(target, torch.Tensor)
        and tuple(target.shape) != tuple(o.shape)
    ):
        try:
            shape = torch.broadcast_shapes(o.shape, target.shape)
        except RuntimeError:
            shape = None
        if shape is not None:
            found.append(
                Finding(
                    "target-broadcast",
                    "error",
                    f"{L.NAMES[kind]} compares output {tuple(o.shape)} with target {tuple(target.shape)}: "
                    f"they broadcast silently to {tuple(shape)}, so every prediction is compared with every "
                    "target",
                    "make the shapes equal, e.g. `out.squeeze(-1)` or `y.view(-1, 1)`",
                    where="loss",
                    evidence={"output": tuple(o.shape), "target": tuple(target.shape), "broadcast": shape},
                )
            )
    return found


def _initial_loss_finding(
    kind: str | None, loss: float, expected: float | None, out: Any, classes: int | None
) -> Finding | None:
    if expected is None or not math.isfinite(loss):
        return None
    severity = initial_loss_severity(loss, expected)
    if severity is None:
        return None
    what = f"ln({classes}) = {expected:.4g}" if classes else f"{expected:.4g}"
    o = out.detach().float() if isinstance(out, torch.Tensor) else None
    scale = f"; the outputs have std {float(o.std()):.3g}" if o is not None and o.numel() > 1 else ""
    if kind == "nll" and o is not None and not bool((o <= 1e-6).all()):
        hint = "NLLLoss expects log-probabilities: end the model with LogSoftmax(dim=1), or use CrossEntropyLoss on the raw logits"
    elif loss > expected:
        hint = (
            "the network is over-confident at initialization: scale the final layer's weights down "
            "(e.g. multiply by 0.01) and set its bias to zero (or to the log of the class priors)"
        )
    else:
        hint = (
            "a loss below chance before any training means the task leaks through the input or the loss is "
            "mis-specified (wrong reduction, a softmax in the wrong place, targets that are trivially "
            "predictable)"
        )
    return Finding(
        "initial-loss",
        severity,
        f"the initial loss is {loss:.4g}, far from the chance level {what} the loss and class count "
        f"predict{scale}",
        hint,
        where="loss",
        evidence={"loss": loss, "expected": expected, "classes": classes},
    )


def _gradient_rows(model: nn.Module) -> pd.DataFrame:
    rows = []
    for name, p in model.named_parameters():
        g = p.grad
        gn = float(g.detach().float().norm()) if g is not None else math.nan
        wn = float(p.detach().float().norm())
        rows.append(
            {
                "name": name,
                "shape": tuple(p.shape),
                "requires_grad": p.requires_grad,
                "has_grad": g is not None,
                "grad_norm": gn,
                "weight_norm": wn,
                "ratio": gn / wn if wn > 0 and g is not None else math.nan,
                "finite": g is None or bool(torch.isfinite(g).all()),
            }
        )
    cols = ["name", "shape", "requires_grad", "has_grad", "grad_norm", "weight_norm", "ratio", "finite"]
    return pd.DataFrame(rows, columns=cols)


def _gradient_findings(frame: pd.DataFrame, loss_has_graph: bool) -> list[Finding]:
    found = []
    trainable = frame[frame.requires_grad]
    missing = trainable[~trainable.has_grad]
    if not loss_has_graph and len(trainable):
        found.append(
            Finding(
                "no-grad",
                "error",
                f"the loss is not connected to any of the {len(trainable)} trainable parameters: it has no "
                "autograd graph",
                "something detaches the graph: a .detach(), .item(), .numpy() or torch.no_grad() in the forward "
                "or the loss, or a target passed where the output should be",
                where="loss",
                evidence={"parameters": list(trainable.name)},
            )
        )
    elif len(missing):
        names = list(missing.name)
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        found.append(
            Finding(
                "no-grad",
                "error",
                f"{len(names)} of {len(trainable)} trainable parameters received no gradient: {shown}",
                "these layers are not used in the forward pass, or their output is detached before the loss "
                "(.detach(), .data, .item(), torch.no_grad()); remove them or reconnect them",
                where=names[0],
                evidence={"parameters": names},
            )
        )
    bad = trainable[trainable.has_grad & ~trainable.finite]
    if len(bad):
        found.append(
            Finding(
                "nonfinite",
                "error",
                f"the gradients of {', '.join(bad.name[:4])} contain NaN or Inf",
                "look for log(0), division by zero or sqrt of a negative in the forward or the loss",
                where=str(bad.name.iloc[0]),
            )
        )
    return found


def _regularization_curve(
    model: nn.Module,
    inputs: tuple,
    kwargs: dict,
    target: Any,
    reg: Callable[[float], Callable],
    strengths: Sequence[float],
) -> tuple[pd.DataFrame, list[Finding]]:
    """Loss at each regularization strength on the same batch; it must rise with the strength."""
    rows = []
    with torch.no_grad():
        out = run_forward(model, inputs, kwargs)
        for s in strengths:
            value = float(L.call_loss(reg(s), out, target))
            rows.append({"strength": float(s), "loss": value})
    frame = pd.DataFrame(rows, columns=["strength", "loss"])
    found = []
    for a, b in zip(rows, rows[1:]):
        if b["loss"] <= a["loss"]:
            found.append(
                Finding(
                    "reg-not-increasing-loss",
                    "warning",
                    f"raising the regularization strength from {a['strength']:g} to {b['strength']:g} did not "
                    f"raise the loss ({a['loss']:.6g} -> {b['loss']:.6g})",
                    "the penalty is not added to the loss (computed but dropped), has the wrong sign, or "
                    "does not depend on the strength you pass",
                    where="loss",
                    evidence={"curve": rows},
                )
            )
            break
    return frame, found


def check(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    num_classes: int | None = None,
    expected_loss: float | None = None,
    reg: Callable[[float], Callable] | None = None,
    reg_strengths: Sequence[float] = (0.0, 0.1, 1.0, 10.0),
) -> CheckReport:
    """One forward and backward pass on `batch` with dropout off; findings say what to fix first.

    `batch` is one batch (tensor, `(x, y)`, dict) or a DataLoader/Dataset whose first batch is used.
    `num_classes` and `expected_loss` override what is inferred from the output and the loss.
    `reg(strength)` returns a loss function with that regularization strength; when given, the loss is
    evaluated at each of `reg_strengths` and must rise with it (`reg-not-increasing-loss`).
    The model's mode, weights, gradients, buffers, `optimizer` state and RNG are restored afterwards.
    """
    require_real_weights(model)
    batch = to_device(first_batch(batch), model_device(model))
    inputs, kwargs, target = split_batch(batch)
    findings: list[Finding] = []
    in_frame, in_findings = input_findings([*inputs, *kwargs.values()])
    findings += in_findings
    optimizers = (optimizer,) if optimizer is not None else ()
    with (
        preserved(model, weights=True, grads=True, optimizers=optimizers, rng=True),
        hidden_grads(model) as hidden,
    ):
        turned_off = regularization_off(model)
        for p in model.parameters():
            p.grad = None
        with HookSet() as hooks:
            acts = Activations(model, hooks)
            out = run_forward(model, inputs, kwargs, hooks)
        kind = L.loss_kind(loss_fn)
        L.validate_target(kind, out, target, loss_fn)
        findings += _loss_findings(kind, out, target, L.ignore_index(loss_fn))
        loss_t = L.call_loss(loss_fn, out, target)
        if kind is None:
            kind = L.kind_from_graph(loss_t)
            if kind is not None:
                findings += _loss_findings(kind, out, target)
        unstable = _log_softmax_finding(loss_t)
        findings += [unstable] if unstable is not None else []
        loss = float(loss_t.detach())
        classes = num_classes or L.classes_of(kind, out)
        expected = expected_loss
        if expected is None and kind in L.CLASSIFICATION and num_classes:
            expected = math.log(num_classes)
        if expected is None:
            expected = L.expected_loss(kind, out, target, loss_fn)
        findings += acts.findings
        if acts.first_nonfinite is not None:
            findings.append(
                Finding(
                    "nonfinite",
                    "error",
                    f"layer {acts.first_nonfinite} is the first to output NaN or Inf",
                    "look at that layer's input range and weights (log of zero, division, exploding init)",
                    where=acts.first_nonfinite,
                )
            )
        if not math.isfinite(loss):
            findings.append(
                Finding(
                    "nonfinite",
                    "error",
                    f"the loss is {loss}",
                    "the output or the target contains NaN/Inf, or the loss takes the log of 0: use the "
                    "logits versions (CrossEntropyLoss, BCEWithLogitsLoss)",
                    where="loss",
                )
            )
        init = _initial_loss_finding(kind, loss, expected, out, classes)
        if init is not None:
            findings.append(init)
        has_graph = loss_t.requires_grad
        if has_graph:
            try:
                loss_t.backward()
            except Exception as e:
                raise NbdebugError(f"the backward pass failed: {type(e).__name__}: {e}") from None
        gradients = _gradient_rows(model)
        findings += _gradient_findings(gradients, has_graph)
        findings += one_pass_findings(hidden, optimizer)
        reg_frame = None
        if reg is not None:
            reg_frame, reg_findings = _regularization_curve(model, inputs, kwargs, target, reg, reg_strengths)
            findings += reg_findings
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: order[f.severity])
    return CheckReport(
        loss=loss,
        expected_loss=expected,
        loss_kind=kind,
        num_classes=classes,
        findings=findings,
        gradients=gradients,
        activations=pd.DataFrame(acts.rows),
        inputs=in_frame,
        turned_off=turned_off,
        regularization=reg_frame,
    )


Report = CheckReport  # the name before 0.2; kept so existing code keeps working
