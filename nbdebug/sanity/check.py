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

from .._core.data import iter_batches, model_device, split_batch, to_device
from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text, worst
from .._core.hooks import HookSet, preserved
from . import loss_kinds as L
from .gradcheck import GradcheckResult, gradcheck

__all__ = ["GradcheckResult", "Report", "check", "gradcheck", "regularization_off", "run_forward"]

DEAD_RELU_FRACTION = 0.7  # CATALOGUE["dead-relu"]
SATURATION_LIMIT = 5.0  # CATALOGUE["saturated-activation"]: |pre-activation| beyond 5
SATURATED_FRACTION = 0.5
_RELUS = (nn.ReLU, nn.ReLU6)
_SQUASH = (nn.Tanh, nn.Sigmoid)


@dataclass
class Report:
    """What `check` found on one batch; `findings` is the verdict, the frames are the evidence."""

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

    def __repr__(self) -> str:
        return f"Report({self.summary()}, {len(self.findings)} findings)"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        text = (
            f"nbdebug.check: {self.summary()}\n{findings_text(self.findings, 'No findings: ready to train.')}"
        )
        return {"text/plain": text, "text/html": self.to_html()}

    def to_html(self) -> str:
        grads = self.gradients[["name", "shape", "requires_grad", "grad_norm", "weight_norm", "ratio"]]
        table = grads.to_html(index=False, float_format=lambda v: f"{v:.3g}", classes="nbdebug-table")
        from .._core.plot import figure_png, png_html
        from .plot import gradient_norms_figure

        img = png_html(figure_png(gradient_norms_figure(self), dpi=80), alt="gradient norms per parameter")
        return (
            '<div class="nbdebug-check">'
            f"<b>nbdebug.check</b>: {html.escape(self.summary())}"
            f"{findings_html(self.findings, 'No findings: ready to train.')}"
            f"<details><summary>per-parameter gradient norms</summary>{img}{table}</details></div>"
        )


def regularization_off(model: nn.Module) -> list[str]:
    """Put every dropout layer in eval mode (the caller restores modes); return what was turned off."""
    names = [n or "<root>" for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    if not names:
        return []
    return [f"dropout (layer{'s' if len(names) > 1 else ''} {', '.join(names)})"]


def _first_batch(batch: Any) -> Any:
    """`check` takes one batch; given a DataLoader/Dataset/iterable, it uses the first batch."""
    if isinstance(batch, list) and batch and all(isinstance(b, (tuple, list, dict)) for b in batch):
        return batch[0]  # a list of batches, not one (inputs, target) batch
    if isinstance(batch, (torch.Tensor, tuple, list, dict)):
        return batch
    for b in iter_batches(batch):
        return b
    raise NbdebugError("data is empty: the loader yielded no batch")


def _meta_check(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise NbdebugError(f"expected an nn.Module as the model, got {describe(model)}")
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if meta:
        raise NbdebugError(
            f"the model's parameters are on the meta device (e.g. {meta[0]}): they have no values to run; "
            "materialize them first with `model.to_empty(device='cpu')` and initialize the weights"
        )


def run_forward(model: nn.Module, inputs: tuple, kwargs: dict, hooks: HookSet | None = None) -> Any:
    """Call the model; an exception names the innermost layer that was running and its input."""
    stack: list[tuple[str, nn.Module, tuple]] = []
    own = hooks is None
    hooks = hooks or HookSet()
    names = {m: n for n, m in model.named_modules()}

    def pre(m: nn.Module, args: tuple) -> None:
        stack.append((names.get(m, "?"), m, args))

    def post(m: nn.Module, args: tuple, out: Any) -> None:
        if stack:
            stack.pop()

    for m in model.modules():
        if m is not model:
            hooks.forward_pre(m, pre)
            hooks.forward(m, post)
    try:
        return model(*inputs, **kwargs)
    except NbdebugError:
        raise
    except Exception as e:
        if stack:
            name, m, args = stack[-1]
            raise NbdebugError(
                f"the forward pass failed in layer {name!r} ({type(m).__name__}) on input {describe(args)}: "
                f"{type(e).__name__}: {e}"
            ) from None
        raise NbdebugError(
            f"the forward pass of {type(model).__name__} failed on input {describe(inputs)}: "
            f"{type(e).__name__}: {e}"
        ) from None
    finally:
        if own:
            hooks.remove()


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


class _Activations:
    """Forward hooks on leaf modules: statistics, dead ReLUs, saturated tanh/sigmoid, first non-finite."""

    def __init__(self, model: nn.Module, hooks: HookSet) -> None:
        self.rows: list[dict[str, Any]] = []
        self.findings: list[Finding] = []
        self.first_nonfinite: str | None = None
        for name, m in model.named_modules():
            if not list(m.children()) and m is not model:
                hooks.forward(m, self._hook(name))

    def _hook(self, name: str) -> Callable:
        def hook(m: nn.Module, args: tuple, out: Any) -> None:
            o = _first_tensor(out)
            if o is None or not o.is_floating_point():
                return
            o = o.detach()
            row: dict[str, Any] = {"name": name, "type": type(m).__name__, "shape": tuple(o.shape)}
            finite = bool(torch.isfinite(o).all())
            row["finite"] = finite
            of = o.float()
            row["mean"] = float(of.mean()) if o.numel() else math.nan
            row["std"] = float(of.std()) if o.numel() > 1 else math.nan
            if not finite and self.first_nonfinite is None:
                self.first_nonfinite = name
            if isinstance(m, _RELUS) and o.numel():
                units = of.transpose(0, 1).reshape(of.shape[1], -1) if of.dim() >= 2 else of.reshape(-1, 1)
                dead = float((units <= 0).all(dim=1).float().mean())
                row["dead_fraction"] = dead
                if dead >= DEAD_RELU_FRACTION:
                    self.findings.append(
                        Finding(
                            "dead-relu",
                            "warning",
                            f"{dead:.0%} of the {units.shape[0]} units of {name} output zero on the whole "
                            "batch at initialization",
                            "the layer before it has a large negative bias or too large a weight scale, or "
                            "the input is badly scaled: check the initialization, lower the learning rate, "
                            "or use LeakyReLU",
                            where=name,
                            evidence={"dead_fraction": dead, "units": int(units.shape[0])},
                        )
                    )
            if isinstance(m, _SQUASH) and args and isinstance(args[0], torch.Tensor) and args[0].numel():
                sat = float((args[0].detach().float().abs() > SATURATION_LIMIT).float().mean())
                row["saturated_fraction"] = sat
                if sat > SATURATED_FRACTION:
                    self.findings.append(
                        Finding(
                            "saturated-activation",
                            "warning",
                            f"{sat:.0%} of the pre-activations of {name} ({type(m).__name__}) lie beyond "
                            f"+-{SATURATION_LIMIT:g}, where its gradient is below 1e-4",
                            "scale the inputs or the previous layer's initialization down (e.g. Xavier init "
                            "for tanh/sigmoid), or add a normalization layer before it",
                            where=name,
                            evidence={"saturated_fraction": sat},
                        )
                    )
            self.rows.append(row)

        return hook


def _input_findings(inputs: Sequence[Any]) -> tuple[pd.DataFrame, list[Finding]]:
    rows, findings = [], []
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() < 2:
            continue
        xf = x.detach().float()
        finite = bool(torch.isfinite(xf).all())
        mean, std = (float(xf.mean()), float(xf.std())) if finite else (math.nan, math.nan)
        lo, hi = (float(xf.min()), float(xf.max())) if finite else (math.nan, math.nan)
        rows.append({"input": i, "shape": tuple(x.shape), "mean": mean, "std": std, "min": lo, "max": hi})
        where = f"input {i}"
        if not finite:
            findings.append(
                Finding(
                    "nonfinite",
                    "error",
                    f"the input batch {describe(x)} contains NaN or Inf",
                    "clean the data (missing values, division by zero in preprocessing)",
                    where=where,
                )
            )
        elif abs(mean) > 3 or std > 10 or std < 0.01:
            guess = " - it looks like raw 0-255 pixels" if hi > 1.5 and hi <= 255 and lo >= 0 else ""
            findings.append(
                Finding(
                    "unnormalized-input",
                    "warning",
                    f"input {i} has mean {mean:.3g} and std {std:.3g} (range [{lo:.3g}, {hi:.3g}]){guess}",
                    "standardize the inputs: subtract the training-set mean and divide by its std "
                    "(for images: ToTensor() then Normalize(mean, std))",
                    where=where,
                    evidence={"mean": mean, "std": std, "min": lo, "max": hi},
                )
            )
    return pd.DataFrame(rows, columns=["input", "shape", "mean", "std", "min", "max"]), findings


def _ends_with(out: torch.Tensor, *names: str) -> bool:
    return out.grad_fn is not None and out.grad_fn.name().startswith(names)


def _loss_findings(kind: str | None, out: Any, target: Any) -> list[Finding]:
    """Loss-function pitfalls read from the output values and the autograd node that produced them."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or not out.numel():
        return []
    o = out.detach().float()
    found = []
    if kind in L.CLASSIFICATION and o.dim() >= 2 and o.shape[1] > 1:
        rowsum = o.sum(dim=1)
        if bool((o >= 0).all()) and bool(((rowsum - 1).abs() < 1e-3).all()):
            name = L.NAMES[kind]
            fix = (
                "replace the final Softmax with LogSoftmax(dim=1)"
                if kind == "nll"
                else "remove the final Softmax and feed the raw logits to CrossEntropyLoss"
            )
            found.append(
                Finding(
                    "softmax-before-ce",
                    "error",
                    f"{name} is given probabilities: every row of the model output is non-negative and sums "
                    f"to 1, so the loss applies (log-)softmax a second time and its gradients shrink",
                    f"{fix}; apply softmax only to read probabilities at inference",
                    where="model output",
                    evidence={"min": float(o.min()), "max": float(o.max())},
                )
            )
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
    if abs(loss - expected) <= 0.5 * expected + 0.1:
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
        "warning",
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
) -> Report:
    """One forward and backward pass on `batch` with dropout off; findings say what to fix first.

    `batch` is one batch (tensor, `(x, y)`, dict) or a DataLoader/Dataset whose first batch is used.
    `num_classes` and `expected_loss` override what is inferred from the output and the loss.
    `reg(strength)` returns a loss function with that regularization strength; when given, the loss is
    evaluated at each of `reg_strengths` and must rise with it (`reg-not-increasing-loss`).
    The model's mode, weights, gradients, buffers, `optimizer` state and RNG are restored afterwards.
    """
    _meta_check(model)
    batch = to_device(_first_batch(batch), model_device(model))
    inputs, kwargs, target = split_batch(batch)
    findings: list[Finding] = []
    in_frame, in_findings = _input_findings([*inputs, *kwargs.values()])
    findings += in_findings
    optimizers = (optimizer,) if optimizer is not None else ()
    with preserved(model, weights=True, grads=True, optimizers=optimizers, rng=True):
        turned_off = regularization_off(model)
        for p in model.parameters():
            p.grad = None
        with HookSet() as hooks:
            acts = _Activations(model, hooks)
            out = run_forward(model, inputs, kwargs, hooks)
        kind = L.loss_kind(loss_fn)
        L.validate_target(kind, out, target, loss_fn)
        findings += _loss_findings(kind, out, target)
        loss_t = L.call_loss(loss_fn, out, target)
        if kind is None:
            kind = L.kind_from_graph(loss_t)
            if kind is not None:
                findings += _loss_findings(kind, out, target)
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
        reg_frame = None
        if reg is not None:
            reg_frame, reg_findings = _regularization_curve(model, inputs, kwargs, target, reg, reg_strengths)
            findings += reg_findings
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: order[f.severity])
    return Report(
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
