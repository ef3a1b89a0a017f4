"""The forward pass `check` and `overfit` share: one batch through the model, dropout off, each layer's
activations summarized (dead ReLUs, saturated tanh/sigmoid, the first non-finite output), and a failure
named after the innermost layer that was running."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._core.data import iter_batches
from .._core.errors import NbdebugError, describe
from .._core.findings import Finding
from .._core.hooks import HookSet
from .._core.tensors import first_tensor

DEAD_RELU_FRACTION = 0.7  # CATALOGUE["dead-relu"]
SATURATION_LIMIT = 5.0  # CATALOGUE["saturated-activation"]: |pre-activation| beyond 5
SATURATED_FRACTION = 0.5
_RELUS = (nn.ReLU, nn.ReLU6)
_SQUASH = (nn.Tanh, nn.Sigmoid)


def regularization_off(model: nn.Module) -> list[str]:
    """Put every dropout layer in eval mode (the caller restores modes); return what was turned off."""
    names = [n or "<root>" for n, m in model.named_modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    if not names:
        return []
    return [f"dropout (layer{'s' if len(names) > 1 else ''} {', '.join(names)})"]


def first_batch(batch: Any) -> Any:
    """`check` takes one batch; given a DataLoader/Dataset/iterable, it uses the first batch."""
    if isinstance(batch, list) and batch and all(isinstance(b, (tuple, list, dict)) for b in batch):
        return batch[0]  # a list of batches, not one (inputs, target) batch
    if isinstance(batch, (torch.Tensor, tuple, list, dict)):
        return batch
    for b in iter_batches(batch):
        return b
    raise NbdebugError("data is empty: the loader yielded no batch")


def require_real_weights(model: nn.Module) -> None:
    """A model whose weights are meta tensors cannot be run: say how to materialize them."""
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


class Activations:
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
            o = first_tensor(out)
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


def input_findings(inputs: Sequence[Any]) -> tuple[pd.DataFrame, list[Finding]]:
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
