"""Findings about a search: each parameter's effect on the score from an additive least-squares fit
(is it flat, does its trend peak at the edge of the range), too few trials, failed trials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._core.findings import Finding
from .space import Choice, _fmt, _g

if TYPE_CHECKING:
    from .result import SearchResult, Trial

# Thresholds of the findings (documented with their sources in the findings catalogue).
EDGE_FRACTION = 0.1  # best value within the outer 10% of its range, on the search scale
EDGE_MIN_TRIALS = 5
FLAT_NOISE = 1.0  # a parameter whose fitted effect is under the trial-to-trial noise "does not matter"
FLAT_MIN_TRIALS = 10
TRIALS_PER_PARAM = 10  # fewer completed trials than this per searched parameter is too few
TOP_FRACTION = 0.05  # Bergstra & Bengio: P(one of n trials in the best 5%) = 1 - 0.95**n


@dataclass(frozen=True)
class Effect:
    """How much a parameter moves the score (`effect`: 10th to 90th percentile of its component in an
    additive fit over all parameters, at the trials' values) next to the trial-to-trial noise the fit
    leaves unexplained (`noise`, residual std)."""

    effect: float
    noise: float
    trials: int
    peak: float | None = None  # position (0..1, search scale) where the fitted component is best

    @property
    def flat(self) -> bool:
        return self.effect <= FLAT_NOISE * self.noise + 1e-12


def _basis(
    result: SearchResult, name: str, done: list[Trial]
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Regressors for one parameter, and a function giving its fitted component across the range from
    its coefficients: a cubic in the position on the search scale (log for log ranges), or one dummy per
    option for a choice."""
    dist = result.space[name]
    if dist.numeric:
        x = np.array([dist.position(t.params[name]) for t in done], dtype=float)
        powers = range(1, min(3, len(np.unique(x)) - 1) + 1)
        grid = np.linspace(0, 1, 101)
        return np.stack([x**k for k in powers], 1), lambda c: np.stack([grid**k for k in powers], 1) @ c
    seen = sorted({repr(t.params[name]) for t in done})
    cols = np.array([[repr(t.params[name]) == o for o in seen[1:]] for t in done], dtype=float)
    return cols.reshape(len(done), -1), lambda c: np.concatenate([[0.0], c])


def param_effects(result: SearchResult) -> dict[str, Effect]:
    """Each searched parameter's effect on the score and the noise, from one additive least-squares fit.

    Random search draws parameters independently, so an additive fit separates them: a parameter that
    does not matter gets an effect near zero even when another one dominates the score. Empty when there
    are too few completed trials for the fit (fewer than its coefficients + 5).
    """
    done = result.completed
    names = [n for n in result.space if len({repr(t.params[n]) for t in done}) > 1]
    if not names:
        return {}
    scores = np.array([t.score for t in done], dtype=float)
    bases = {n: _basis(result, n, done) for n in names}
    width = [b[0].shape[1] for b in bases.values()]
    if len(done) < sum(width) + 1 + 5:
        return {}
    design = np.concatenate([np.ones((len(done), 1)), *(b[0] for b in bases.values())], axis=1)
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    dof = len(done) - design.shape[1]
    noise = float(np.sqrt(((scores - design @ coef) ** 2).sum() / dof))
    out, at = {}, 1
    for (name, (cols, component)), w in zip(bases.items(), width):
        c = coef[at : at + w]
        # the effect where trials are, not the fit's swing at the sparse ends of the range
        lo, hi = np.percentile(cols @ c, [10, 90])
        peak = None
        if result.space[name].numeric:
            curve = component(c)
            peak = float(np.argmax(curve) if result.mode == "max" else np.argmin(curve)) / (len(curve) - 1)
        out[name] = Effect(float(hi - lo), noise, len(done), peak)
        at += w
    return out


def _edge_finding(result: SearchResult, name: str, best: Trial, effect: Effect | None) -> Finding | None:
    dist = result.space[name]
    pos = dist.position(best.params[name])
    if pos >= 1 - EDGE_FRACTION:
        side, where_word = "high", "top"
    elif pos <= EDGE_FRACTION:
        side, where_word = "low", "bottom"
    else:
        return None
    if effect is not None and effect.peak is not None:  # the fitted trend must point past the same edge
        if (side == "high" and effect.peak < 1 - EDGE_FRACTION) or (
            side == "low" and effect.peak > EDGE_FRACTION
        ):
            return None
    scale = "log" if dist.log else "linear"
    wider = dist.widened(side)
    return Finding(
        "search-edge-of-range",
        "warning",
        f"best {name} {_fmt(best.params[name])} is at the {where_word} of "
        f"[{_g(dist.low)}, {_g(dist.high)}] (position {pos:.2f} on a {scale} scale, "
        f"{result.score_name}={best.score:.4g}): the optimum may lie outside the range",
        f"widen the range past the {side} end, e.g. {name}={wider!r}, and search again",
        where=name,
        evidence={
            "param": name,
            "value": best.params[name],
            "position": pos,
            "side": side,
            "suggested": repr(wider),
        },
    )


def _failed_finding(result: SearchResult) -> Finding | None:
    failed, ok = result.failed, result.completed
    if not failed:
        return None
    n_run = len(failed) + len(ok)
    first = failed[0]
    message = f"{len(failed)} of {n_run} trials failed; first: trial {first.index}: {first.error}"
    hint = "read each trial's error in result.to_frame() (and trial.traceback); fix train_fn or the range"
    where = None
    if ok:  # do the failures sit at one end of a numeric range?
        for name, dist in result.space.items():
            if not dist.numeric:
                continue
            pos_ok = np.array([dist.position(t.params[name]) for t in ok])
            pos_bad = np.array([dist.position(t.params[name]) for t in failed])
            limit_hi = min(t.params[name] for t in failed)
            limit_lo = max(t.params[name] for t in failed)
            if len(failed) >= 2 and pos_bad.min() > np.median(pos_ok) and pos_bad.min() > pos_ok.min():
                message += f"; every failure has {name} >= {_fmt(limit_hi)}"
                hint = f"lower the top of the {name} range below {_fmt(limit_hi)} (or make train_fn stable there)"
                where = name
                break
            if len(failed) >= 2 and pos_bad.max() < np.median(pos_ok) and pos_bad.max() < pos_ok.max():
                message += f"; every failure has {name} <= {_fmt(limit_lo)}"
                hint = f"raise the bottom of the {name} range above {_fmt(limit_lo)} (or make train_fn stable there)"
                where = name
                break
    return Finding(
        "search-trials-failed",
        "error" if not ok else "warning",
        message,
        hint,
        where=where,
        evidence={"failed": [t.index for t in failed], "errors": [t.error for t in failed]},
    )


def search_findings(result: SearchResult) -> list[Finding]:
    """Findings about the search itself: edge of range, flat parameters, too few trials, failures."""
    findings: list[Finding] = []
    failed = _failed_finding(result)
    if failed is not None:
        findings.append(failed)
    done = result.completed
    searched = [n for n, d in result.space.items() if not (isinstance(d, Choice) and len(d.options) < 2)]
    best = result.best
    flat: set[str] = set()
    effects = param_effects(result) if len(done) >= FLAT_MIN_TRIALS else {}
    for name, eff in effects.items():
        if name not in searched or not eff.flat:
            continue
        flat.add(name)
        findings.append(
            Finding(
                "search-flat-parameter",
                "info",
                f"{result.score_name} barely depends on {name}: it moves the score by {eff.effect:.3g} "
                f"(10th to 90th percentile of its fitted effect over {eff.trials} trials), within the "
                f"trial-to-trial noise of {eff.noise:.3g}",
                f"fix {name} at a sensible value and spend the trials on the parameters that matter",
                where=name,
                evidence={"param": name, "effect": eff.effect, "noise": eff.noise, "trials": eff.trials},
            )
        )
    if best is not None and len(done) >= EDGE_MIN_TRIALS:
        for name in searched:
            dist = result.space[name]
            if dist.numeric and name not in flat:
                edge = _edge_finding(result, name, best, effects.get(name))
                if edge is not None:
                    findings.append(edge)
    needed = TRIALS_PER_PARAM * max(1, len(searched))
    if searched and done and len(done) < needed and not result.running:
        p = 1 - (1 - TOP_FRACTION) ** len(done)
        findings.append(
            Finding(
                "search-too-few-trials",
                "warning",
                f"{len(done)} completed trials for {len(searched)} searched parameters: the chance that "
                f"one of them landed in the best 5% of the space is 1-0.95^{len(done)} = {p:.0%}, and "
                f"edge/flat findings need about {TRIALS_PER_PARAM} trials per parameter",
                f"run at least {needed} trials (60 trials give a 95% chance of a top-5% point), or search "
                "fewer parameters",
                evidence={"trials": len(done), "params": len(searched), "p_top5": p},
            )
        )
    return findings
