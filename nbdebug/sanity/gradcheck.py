"""Numerical versus analytic gradients, the CS231n way, in float64 on a copy.

The function's outputs are reduced to one scalar with fixed random weights (so every output entry
matters and a wrong backward cannot hide behind a sum). For each input and parameter, a sample of
entries is perturbed by +-h and the centred difference is compared with autograd's gradient through the
relative error |a - n| / max(|a|, |n|). An entry whose one-sided differences disagree sits on a kink
(ReLU at 0, max, abs), where the numerical gradient is meaningless; such entries are reported and left
out of the verdict.
"""

from __future__ import annotations

import copy
import html
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import nn

from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import rng_state, set_rng_state
from .._core.result import Result

WRONG, SUSPICIOUS, GOOD = 1e-2, 1e-4, 1e-7  # CS231n reading of the relative error


def reading(err: float) -> str:
    if not math.isfinite(err):
        return "wrong"
    if err > WRONG:
        return "wrong"
    if err > SUSPICIOUS:
        return "suspicious"
    if err > GOOD:
        return "ok"
    return "good"


@dataclass(repr=False)
class GradcheckResult(Result):
    """Per-tensor maximum relative errors, the worst entries, and a `gradcheck-failed` finding if any."""

    rows: pd.DataFrame  # one row per input / parameter checked
    worst: pd.DataFrame  # the worst entries: tensor, index, analytic, numeric, rel_error, kink
    findings: list[Finding] = field(default_factory=list)
    eps: float = 1e-6
    notes: list[str] = field(default_factory=list)  # e.g. how many sampled entries sat on a kink

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def max_error(self) -> float:
        vals = self.rows["max_rel_error"].dropna()
        return float(vals.max()) if len(vals) else 0.0

    def to_frame(self) -> pd.DataFrame:
        return self.rows.copy()

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return f"nbdebug.gradcheck {verdict}: max relative error {self.max_error:.3g} ({reading(self.max_error)})"

    def to_text(self) -> str:
        notes = "".join(f"\nnote: {n}" for n in self.notes)
        return f"{self.summary()}\n{self.rows.to_string(index=False)}\n{findings_text(self.findings, '')}{notes}".rstrip()

    def _html(self) -> str:
        table = self.rows.to_html(index=False, float_format=lambda v: f"{v:.3g}", classes="nbdebug-table")
        colour = "#2e7d32" if self.passed else "#c62828"
        return (
            f'<div class="nbdebug-gradcheck"><b style="color:{colour}">{html.escape(self.summary())}</b>{table}'
            f"{findings_html(self.findings, 'Analytic and numerical gradients agree.')}"
            + "".join(f"<div><i>note:</i> {html.escape(n)}</div>" for n in self.notes)
            + "</div>"
        )


def _as_callable(fn: Any) -> Callable:
    if isinstance(fn, type) and issubclass(fn, torch.autograd.Function):
        return fn.apply
    if callable(fn):
        return fn
    raise NbdebugError(f"gradcheck needs a module, a function or an autograd.Function, got {describe(fn)}")


def _float_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _float_outputs(o)]
    return []


def _kinky_modules(fn: Any) -> list[str]:
    kinds = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
    if not isinstance(fn, nn.Module):
        return []
    return [n for n, m in fn.named_modules() if isinstance(m, kinds)]


def gradcheck(
    fn: Any,
    *inputs: Any,
    eps: float = 1e-6,
    max_entries: int = 20,
    params: bool = True,
    seed: int = 0,
    **kwargs: Any,
) -> GradcheckResult:
    """Compare autograd's gradients of `fn(*inputs, **kwargs)` with centred differences, in float64.

    `fn` is an `nn.Module` (checked on a deep copy, dropout off, parameters included when `params`), a
    function, or an `autograd.Function` subclass. At most `max_entries` entries of each tensor are
    sampled (so large layers finish in seconds). Integer inputs (labels, indices) are passed through.
    The caller's module, tensors and RNG are left as they were.
    """
    if isinstance(fn, nn.Module):
        if any(p.device.type == "meta" for p in fn.parameters()):
            raise NbdebugError("the module's parameters are on the meta device: there is nothing to check")
        target = copy.deepcopy(fn).double()
        for m in target.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        named_params = [(n, p) for n, p in target.named_parameters() if p.requires_grad] if params else []
        call = target
    else:
        call = _as_callable(fn)
        named_params = []
    args = [
        t.detach().to(torch.float64).clone().requires_grad_(True)
        if isinstance(t, torch.Tensor) and t.is_floating_point()
        else t
        for t in inputs
    ]
    checked: list[tuple[str, str, torch.Tensor]] = [
        (f"input {i}", "input", t)
        for i, t in enumerate(args)
        if isinstance(t, torch.Tensor) and t.requires_grad
    ] + [(n, "parameter", p) for n, p in named_params]
    if not checked:
        raise NbdebugError(
            f"nothing to check: no floating-point input among {describe(list(inputs))} and no trainable parameter"
        )
    saved_rng = rng_state()
    weights: list[torch.Tensor] = []

    def scalar() -> torch.Tensor:
        torch.manual_seed(seed)  # stochastic layers draw the same numbers at every evaluation
        try:
            out = call(*args, **kwargs)
        except Exception as e:
            hint = (
                "; a function that closes over a float32 module cannot run in float64: pass the module "
                "itself (its parameters are checked too), or call .double() on it inside the function"
                if "dtype" in str(e) or "Double" in str(e) or "Float" in str(e)
                else ""
            )
            raise NbdebugError(
                f"gradcheck: calling {getattr(fn, '__name__', type(fn).__name__)} on {describe(args)} "
                f"(float64) failed: {type(e).__name__}: {e}{hint}"
            ) from None
        outs = _float_outputs(out)
        if not outs:
            raise NbdebugError(f"gradcheck: the function returned {describe(out)}, no floating-point tensor")
        if not weights:
            g = torch.Generator().manual_seed(seed + 1)
            weights.extend(torch.randn(o.shape, generator=g, dtype=torch.float64) for o in outs)
        return sum((o.to(torch.float64) * w.to(o.device)).sum() for o, w in zip(outs, weights))

    try:
        base = scalar()
        tensors = [t for _, _, t in checked]
        if not base.requires_grad:
            raise NbdebugError(
                "gradcheck: the output does not depend on any checked tensor (no autograd graph)"
            )
        analytic = torch.autograd.grad(base, tensors, allow_unused=True)
        f0 = float(base.detach())
        rows, entries = [], []
        sampler = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for (name, role, t), a in zip(checked, analytic):
                a = torch.zeros_like(t) if a is None else a
                flat, aflat = t.view(-1), a.reshape(-1)
                k = min(max_entries, flat.numel())
                idx = torch.randperm(flat.numel(), generator=sampler)[:k].sort().values
                scale = max(1.0, abs(f0))
                errs, kinks = [], 0
                for j in idx.tolist():
                    old = float(flat[j])
                    flat[j] = old + eps
                    fp = float(scalar())
                    flat[j] = old - eps
                    fm = float(scalar())
                    flat[j] = old
                    num = (fp - fm) / (2 * eps)
                    an = float(aflat[j])
                    fwd, bwd = (fp - f0) / eps, (f0 - fm) / eps
                    kink = abs(fwd - bwd) > 1e-3 * max(abs(fwd), abs(bwd), 1e-6 * scale) + 1e-7 * scale
                    denom = max(abs(an), abs(num), 1e-6 * scale)
                    err = abs(an - num) / denom if denom > 0 else 0.0
                    kinks += kink
                    if not kink:
                        errs.append(err)
                    entries.append(
                        {
                            "tensor": name,
                            "index": tuple(torch.unravel_index(torch.tensor(j), t.shape)) if t.dim() else (),
                            "analytic": an,
                            "numeric": num,
                            "rel_error": err,
                            "kink": kink,
                        }
                    )
                worst_err = max(errs) if errs else math.nan
                rows.append(
                    {
                        "tensor": name,
                        "role": role,
                        "shape": tuple(t.shape),
                        "checked": k,
                        "of": flat.numel(),
                        "kinks": kinks,
                        "max_rel_error": worst_err,
                        "reading": reading(worst_err) if errs else "kinks only",
                    }
                )
    finally:
        set_rng_state(saved_rng)
    frame = pd.DataFrame(rows)
    worst = pd.DataFrame(entries)
    if len(worst):
        worst["index"] = worst["index"].map(lambda ix: tuple(int(i) for i in ix))
        worst = worst.sort_values("rel_error", ascending=False).head(10).reset_index(drop=True)
    return GradcheckResult(frame, worst, _findings(frame, worst), eps, _kink_note(frame, _kinky_modules(fn)))


def _kink_note(frame: pd.DataFrame, kinky: list[str]) -> list[str]:
    n_kinks = int(frame.kinks.sum()) if len(frame) else 0
    if not n_kinks:
        return []
    layers = f"; kinked layers: {', '.join(kinky[:4])}" if kinky else ""
    return [
        f"{n_kinks} sampled entries sit on a kink (one-sided differences disagree{layers}): the numerical "
        "gradient is unreliable there, so they were left out of the verdict; check with inputs away from 0 "
        "for ReLU/max, or with a smooth activation, to cover them"
    ]


def _findings(frame: pd.DataFrame, worst: pd.DataFrame) -> list[Finding]:
    found = []
    bad = frame[frame.max_rel_error > WRONG]
    sus = frame[(frame.max_rel_error > SUSPICIOUS) & (frame.max_rel_error <= WRONG)]
    top = worst[~worst.kink].head(3) if len(worst) else worst
    evidence = ", ".join(
        f"{r.tensor}{list(r.index)}: analytic {r.analytic:.4g} vs numeric {r.numeric:.4g}"
        for r in top.itertuples()
    )
    if len(bad):
        found.append(
            Finding(
                "gradcheck-failed",
                "error",
                f"analytic and numerical gradients disagree for {', '.join(bad.tensor)} (max relative error "
                f"{bad.max_rel_error.max():.3g} > 1e-2); worst entries: {evidence}",
                "the backward pass is wrong: check the custom autograd.Function's backward (a missing factor, "
                "a wrong sign, a transposed matrix) or an in-place operation that overwrites a saved tensor",
                where=str(bad.tensor.iloc[0]),
                evidence={"worst": worst.to_dict("records")},
            )
        )
    elif len(sus):
        found.append(
            Finding(
                "gradcheck-failed",
                "warning",
                f"relative error between 1e-4 and 1e-2 for {', '.join(sus.tensor)} (max "
                f"{sus.max_rel_error.max():.3g}): suspicious in float64; worst entries: {evidence}",
                "acceptable only for objectives with kinks; otherwise look for a small mistake in the backward",
                where=str(sus.tensor.iloc[0]),
                evidence={"worst": worst.to_dict("records")},
            )
        )
    return found
