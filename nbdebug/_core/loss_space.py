"""Is a classification loss given its input in the space it expects?

`CrossEntropyLoss` wants raw logits over the classes of dim 1 and `NLLLoss` wants log-probabilities over
dim 1 (`log_softmax(x, dim=1)`). The values tell which space they are in, exactly, on the first call:
probabilities are non-negative and sum to 1 over their normalized dim, log-probabilities are <= 0 and
their logsumexp there is 0. So a softmax before either loss, raw scores fed to NLLLoss, and a
(log-)softmax taken over the batch (or the time) dimension instead of the classes are read off one batch,
within `TOL` (float32 sums of a softmax are off by ~1e-6; a network's raw outputs by far more than 1e-3;
half precision gets the tolerance its rounding needs, see `tolerance`).

A batch of one says nothing about dim 0: any (log-)softmax over a dim of size 1 is all ones (zeros), so
such dims are never taken as evidence. And `torch.log(softmax(x))` underflows: a probability that rounds to
0 gives -inf and a NaN gradient, where `log_softmax` stays finite; `log_of_softmax` finds that node in the
loss's autograd graph (the `log` keeps its input, the softmax output, for its backward).

Shared by `nbdebug.check` (sanity) and the training monitors (`watch`, `watch_gan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

TOL = 1e-3  # catalogue softmax-before-ce / nll-without-log-softmax / softmax-wrong-dim
GRAPH_NODES = 400  # autograd nodes searched from the loss for log(softmax(...)) (it sits next to the loss)

NAMES = {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss"}


@dataclass(frozen=True)
class Space:
    """A loss input in the wrong space: the catalogue code and the numbers that show it."""

    code: str  # "softmax-before-ce", "nll-without-log-softmax" or "softmax-wrong-dim"
    evidence: dict[str, Any] = field(default_factory=dict)


def tolerance(dtype: torch.dtype, size: int) -> float:
    """How far a (log-)softmax over `size` entries computed in `dtype` may sum off 1 (logsumexp off 0):
    TOL, or for half precision its rounding, eps x (1 + ln size) (bfloat16 log_softmax over 1000
    classes is off by ~0.01; float32 by ~1e-6)."""
    return max(TOL, torch.finfo(dtype).eps * (1 + math.log(max(size, 1))))


def _deviation(x: torch.Tensor, dim: int, log: bool) -> float:
    """Largest distance of the sums over `dim` from 1 (probabilities) or of the logsumexp from 0."""
    s = torch.logsumexp(x, dim) if log else x.sum(dim) - 1
    return float(s.abs().max())


def judge(loss: str, x: torch.Tensor, target: Any = None, ignore_index: int = -100) -> Space | None:
    """The space of `x`, the input of `loss` ("cross_entropy" or "nll_loss", classes on dim 1), when it is
    not the one the loss expects; None when it is, or when the values cannot tell (fewer than 2 classes,
    NaN or +inf entries, a batch of one normalized over its single row)."""
    if loss not in NAMES or not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    if x.dim() < 2 or x.shape[1] < 2 or not x.numel():
        return None
    xf = x.detach().float()
    if bool(torch.isnan(xf).any()) or bool(torch.isposinf(xf).any()):
        return None
    lo, hi = float(xf.min()), float(xf.max())
    prob, logp = lo >= 0, hi <= 0  # -inf is a log-probability (log 0): it stays in logp
    if x.shape[0] == 1 and hi == lo and lo in (0.0, 1.0):
        return None  # (log-)softmax over the one row of a batch of one: dim 0 and dim 1 cannot be told apart
    dims = [1] + [d for d in range(x.dim()) if d != 1 and x.shape[d] > 1]
    dev: dict[int, dict[str, float]] = {d: {} for d in dims}
    for d in dims:
        if prob:
            dev[d]["sum"] = _deviation(xf, d, log=False)
        if logp:
            dev[d]["logsumexp"] = _deviation(xf, d, log=True)
    tol = {d: tolerance(x.dtype, x.shape[d]) for d in dims}
    rows = dev[1]
    if rows.get("sum", math.inf) < tol[1]:
        return Space("softmax-before-ce", {"min": lo, "max": hi, "row_sum_deviation": rows["sum"]})
    if rows.get("logsumexp", math.inf) < tol[1]:
        return None  # log-probabilities over the classes: what NLLLoss wants, and harmless for CE
    for d in dims[1:]:
        if min(dev[d].values(), default=math.inf) < tol[d]:
            return Space(
                "softmax-wrong-dim",
                {
                    "dim": d,
                    "log": dev[d].get("logsumexp", math.inf) < tol[d],
                    "shape": tuple(x.shape),
                    "deviation_per_dim": {k: dict(v) for k, v in dev.items()},
                },
            )
    if loss != "nll_loss":
        return None  # CrossEntropyLoss on raw scores is right
    lse = torch.logsumexp(xf, 1)
    if isinstance(target, torch.Tensor) and not target.is_floating_point() and target.shape == lse.shape:
        lse = lse[target != ignore_index]  # a padded row the loss ignores may hold anything
    if not lse.numel():
        return None
    off = lse.abs()
    if float(off.max()) < tol[1]:
        return None
    return Space(
        "nll-without-log-softmax",
        {
            "max": hi,
            "min": lo,
            "logsumexp_deviation": float(off.max()),
            "rows_off": float((off >= tol[1]).float().mean()),
            "tolerance": tol[1],
        },
    )


def describe(space: Space, loss: str) -> tuple[str, str]:
    """(message, fix) for the codes this module adds (softmax-before-ce keeps each caller's own words)."""
    fn = NAMES.get(loss, loss)
    ev = space.evidence
    if space.code == "nll-without-log-softmax":
        above = f"values up to {ev['max']:.3g} (a log-probability is <= 0) and " if ev["max"] > 0 else ""
        return (
            f"{fn} received raw scores, not log-probabilities: {above}rows whose exp does not sum to 1 "
            f"(logsumexp off 0 by up to {ev['logsumexp_deviation']:.3g}, {ev['rows_off']:.0%} of the rows); "
            "NLLLoss of raw scores is -score[target], unbounded below, so the loss goes negative instead of "
            "fitting",
            "apply log_softmax over the classes before NLLLoss (F.log_softmax(x, dim=1), or end the model "
            "in nn.LogSoftmax(dim=1)), or use CrossEntropyLoss on the raw scores",
        )
    if space.code == "softmax-wrong-dim":
        d, kind = ev["dim"], "log_softmax" if ev["log"] else "softmax"
        per = "; ".join(
            f"dim {k}: " + ", ".join(f"{m} off by {v:.2g}" for m, v in dv.items())
            for k, dv in ev["deviation_per_dim"].items()
        )
        what = "the batch" if d == 0 else f"dim {d}"
        return (
            f"{fn}'s input {ev['shape']} is normalized over {what}, not over the classes (dim 1): a {kind} "
            f"was taken over dim {d} ({per}); each example's scores then depend on the rest of the batch, and "
            "one example on its own is always the same class",
            f"take the {kind} over the classes: {kind}(x, dim=1) (dim=-1 for (N, C) outputs; for "
            "CrossEntropyLoss drop it and pass the logits)",
        )
    return "", ""


def log_of_softmax(loss: torch.Tensor) -> torch.Tensor | None:
    """The softmax output that a `torch.log` node in `loss`'s autograd graph takes the log of (the
    `log(softmax(x))` pattern, searched over the GRAPH_NODES nodes nearest the loss), or None. Read it
    before backward: the graph frees what it saved afterwards."""
    root = getattr(loss, "grad_fn", None)
    seen, todo, n = set(), [root], 0
    while todo and n < GRAPH_NODES:
        node = todo.pop(0)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        n += 1
        nexts = [f for f, _ in getattr(node, "next_functions", ())]
        if node.name().startswith("LogBackward") and any(
            f is not None and f.name().startswith("SoftmaxBackward") for f in nexts
        ):
            try:
                return node._saved_self
            except RuntimeError:  # already freed (a backward ran over it)
                return None
        todo.extend(nexts)
    return None
