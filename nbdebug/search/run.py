"""Hyperparameter random search on a log scale, with findings about the search itself.

The practitioner's notes (after CS231n and Bergstra & Bengio 2012): prefer random search to grid
search (when only a few parameters matter, a grid wastes most trials re-testing the same values of the
ones that do), search scale-like parameters (learning rate, weight decay, width) on a log scale, and
score every trial on one validation set of respectable size instead of cross-validating.

`search(train_fn, space, trials=20, seed=0)` draws every trial's parameters up front from a private
generator (same seed and space -> same draws, and the first k draws do not depend on `trials`), seeds
torch/random/numpy per trial so each trial can be replayed exactly (`SearchResult.replay`), records a
trial that raises or returns NaN as failed and goes on, and restores the caller's RNG state at the end.

Views (the live panel, the magic) follow the search through observers: objects with any of
`on_start(result)`, `on_trial_start(result, trial)`, `on_trial_end(result, trial)`, `on_end(result)`;
`result.request_stop()` ends the search after the running trial. This module never imports IPython or
ipywidgets.
"""

from __future__ import annotations

import abc
import html
import inspect
import math
import numbers
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .._core.errors import NbdebugError, describe
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import rng_state, set_rng_state

# Thresholds of the findings (documented with their sources in nbdebug.findings.CATALOGUE).
EDGE_FRACTION = 0.1  # best value within the outer 10% of its range, on the search scale
EDGE_MIN_TRIALS = 5
FLAT_NOISE = 1.0  # a parameter whose fitted effect is under the trial-to-trial noise "does not matter"
FLAT_MIN_TRIALS = 10
TRIALS_PER_PARAM = 10  # fewer completed trials than this per searched parameter is too few
TOP_FRACTION = 0.05  # Bergstra & Bengio: P(one of n trials in the best 5%) = 1 - 0.95**n

Mode = Literal["max", "min"]
RESERVED = frozenset({"trial", "score", "status", "error", "seconds", "seed"})  # to_frame() columns
_LOSS_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "cost")


# --------------------------------------------------------------------------------------------------
# Distributions
# --------------------------------------------------------------------------------------------------


class Distribution(abc.ABC):
    """A parameter's search range. `log` says whether it is sampled (and plotted) on a log scale."""

    log: bool = False
    numeric: bool = True

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """One draw from the range."""

    @abc.abstractmethod
    def position(self, value: Any) -> float:
        """Where `value` sits in the range on the search scale: 0 at the low end, 1 at the high end."""

    @abc.abstractmethod
    def widened(self, side: Literal["low", "high"]) -> Distribution:
        """The same distribution with the range pushed out past `side` (for the edge-of-range hint)."""


def _num(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not math.isfinite(float(x)):
        raise NbdebugError(f"{what} must be a finite number, got {describe(x)} {x!r}")
    return float(x)


def _g(x: float) -> str:
    return f"{x:.3g}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.2g}"


@dataclass(frozen=True)
class LogUniform(Distribution):
    low: float
    high: float
    log = True

    def __post_init__(self) -> None:
        lo, hi = _num(self.low, "loguniform low"), _num(self.high, "loguniform high")
        if not 0 < lo < hi:
            raise NbdebugError(f"loguniform needs 0 < low < high, got low={lo:g}, high={hi:g}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def position(self, value: Any) -> float:
        return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def widened(self, side: Literal["low", "high"]) -> LogUniform:
        # push the bound out by the range's own span in decades, between 1 and 2 decades
        factor = 10.0 ** max(1.0, min(2.0, math.log10(self.high / self.low)))
        return (
            LogUniform(self.low / factor, self.high)
            if side == "low"
            else LogUniform(self.low, self.high * factor)
        )

    def __repr__(self) -> str:
        return f"loguniform({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class Uniform(Distribution):
    low: float
    high: float

    def __post_init__(self) -> None:
        lo, hi = _num(self.low, "uniform low"), _num(self.high, "uniform high")
        if not lo < hi:
            raise NbdebugError(f"uniform needs low < high, got low={lo:g}, high={hi:g}")

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def position(self, value: Any) -> float:
        return (value - self.low) / (self.high - self.low)

    def widened(self, side: Literal["low", "high"]) -> Uniform:
        span = 0.5 * (self.high - self.low)
        return Uniform(self.low - span, self.high) if side == "low" else Uniform(self.low, self.high + span)

    def __repr__(self) -> str:
        return f"uniform({self.low:g}, {self.high:g})"


@dataclass(frozen=True)
class IntLog(Distribution):
    """Integers in [low, high], each k drawn with probability proportional to log((k+1)/k)."""

    low: int
    high: int
    log = True

    def __post_init__(self) -> None:
        for what, v in (("low", self.low), ("high", self.high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise NbdebugError(f"intlog {what} must be an int, got {describe(v)} {v!r}")
        if not 1 <= self.low < self.high:
            raise NbdebugError(f"intlog needs 1 <= low < high, got low={self.low}, high={self.high}")

    def sample(self, rng: np.random.Generator) -> int:
        value = int(math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1))))
        return min(max(value, int(self.low)), int(self.high))

    def position(self, value: Any) -> float:
        return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))

    def widened(self, side: Literal["low", "high"]) -> IntLog:
        if side == "low":
            return IntLog(max(1, int(self.low) // 4), int(self.high))
        return IntLog(int(self.low), int(self.high) * 4)

    def __repr__(self) -> str:
        return f"intlog({self.low}, {self.high})"


@dataclass(frozen=True)
class Choice(Distribution):
    options: tuple
    numeric = False

    def __post_init__(self) -> None:
        if len(self.options) == 0:
            raise NbdebugError("choice needs at least one option, got an empty list")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def position(self, value: Any) -> float:
        return float(self.options.index(value))

    def widened(self, side: Literal["low", "high"]) -> Choice:
        return self

    def __repr__(self) -> str:
        return f"choice({list(self.options)!r})"


def loguniform(low: float, high: float) -> LogUniform:
    """Log-uniform on [low, high]: each decade is equally likely (learning rates, weight decay)."""
    return LogUniform(low, high)


def uniform(low: float, high: float) -> Uniform:
    """Uniform on [low, high] (dropout, momentum: parameters that are not scale-like)."""
    return Uniform(low, high)


def intlog(low: int, high: int) -> IntLog:
    """Integers in [low, high] on a log scale (widths, batch sizes, layer counts)."""
    return IntLog(low, high)


def choice(options: Sequence[Any], *more: Any) -> Choice:
    """One of `options`, each equally likely: `choice(["adam", "sgd"])` or `choice("adam", "sgd")`."""
    if more or isinstance(options, str) or not isinstance(options, Sequence):
        options = (options, *more)
    return Choice(tuple(options))


def _check_space(space: Any) -> dict[str, Distribution]:
    if not isinstance(space, Mapping) or not space:
        raise NbdebugError(
            f"space must be a non-empty dict of name -> distribution, got {describe(space)}; "
            "e.g. {'lr': nbdebug.loguniform(1e-5, 1e-1)}"
        )
    out = {}
    for name, dist in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise NbdebugError(f"space key {name!r} must be a valid keyword argument name for train_fn")
        if name in RESERVED:
            raise NbdebugError(
                f"space key {name!r} clashes with a column of the result; rename the parameter"
            )
        if isinstance(dist, (list, tuple)):
            dist = choice(list(dist))
        if not isinstance(dist, Distribution):
            raise NbdebugError(
                f"space[{name!r}] is {describe(dist)} {dist!r}; use nbdebug.loguniform(low, high), "
                "uniform(low, high), intlog(low, high) or choice([...]) (fix constants with functools.partial)"
            )
        out[name] = dist
    return out


def draw(space: Mapping[str, Any], trials: int, seed: int = 0) -> list[dict[str, Any]]:
    """The parameters of `trials` trials: deterministic in (space, seed), and a prefix of any longer draw."""
    dists = _check_space(space)
    rng = np.random.default_rng(seed)
    return [{name: d.sample(rng) for name, d in dists.items()} for _ in range(trials)]


def trial_seed(seed: int, index: int) -> int:
    """The torch/random/numpy seed set before trial `index` (independent streams per (seed, index))."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Trial:
    """One call of train_fn. `status`: pending, running, ok, failed (raised or non-finite), stopped."""

    index: int
    params: dict[str, Any]
    seed: int
    status: str = "pending"
    score: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    seconds: float | None = None


@dataclass
class SearchResult:
    """The trials of a search (`to_frame()`), the best one (`best`) and findings about the search."""

    space: dict[str, Distribution]
    trials: list[Trial]
    seed: int
    planned: int
    metric: str | None = None
    mode: Mode = "max"
    stopped_by: str | None = None  # "stop" (request_stop / Stop button), "interrupt", "timeout"
    running: bool = False
    seconds: float = 0.0
    train_fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)
    seed_trials: bool = True
    _stop: bool = field(default=False, repr=False, compare=False)

    # -- control ------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop after the running trial (the panel's Stop button calls this)."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop

    # -- data ---------------------------------------------------------------------------------------
    @property
    def completed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "ok"]

    @property
    def failed(self) -> list[Trial]:
        return [t for t in self.trials if t.status == "failed"]

    @property
    def best(self) -> Trial | None:
        """The completed trial with the best score (highest for mode 'max', lowest for 'min')."""
        done = self.completed
        if not done:
            return None
        pick = max if self.mode == "max" else min
        return pick(done, key=lambda t: t.score)

    @property
    def best_params(self) -> dict[str, Any] | None:
        best = self.best
        return dict(best.params) if best else None

    @property
    def score_name(self) -> str:
        return self.metric or "score"

    def to_frame(self):
        """One row per trial run: trial, the parameters, score, other metrics, status, error, seconds, seed."""
        import pandas as pd

        metric_names: list[str] = []
        for t in self.trials:
            metric_names += [k for k in t.metrics if k != self.metric and k not in metric_names]
        rows = []
        for t in self.trials:
            if t.status == "pending":
                continue
            row = {"trial": t.index, **t.params, "score": t.score}
            row.update({k: t.metrics.get(k) for k in metric_names})
            row.update(status=t.status, error=t.error, seconds=t.seconds, seed=t.seed)
            rows.append(row)
        columns = ["trial", *self.space, "score", *metric_names, "status", "error", "seconds", "seed"]
        frame = pd.DataFrame(rows, columns=columns).astype({"score": float, "seconds": float})
        # object dtype whatever the content, so frames of different searches compare equal (pandas 3
        # would infer a string dtype only when some trial failed)
        frame["error"] = pd.Series([r["error"] for r in rows], index=frame.index, dtype=object)
        return frame

    @property
    def findings(self) -> list[Finding]:
        return search_findings(self)

    def replay(self, index: int) -> Any:
        """Call train_fn again with trial `index`'s parameters and seed: the same score if train_fn is
        deterministic given the torch/random/numpy seed (the caller's RNG state is restored after)."""
        if self.train_fn is None:
            raise NbdebugError("this SearchResult has no train_fn to replay (it was built by hand)")
        if not 0 <= index < len(self.trials):
            raise NbdebugError(f"trial index {index} out of range: the search has {len(self.trials)} trials")
        t = self.trials[index]
        saved = rng_state()
        try:
            if self.seed_trials:
                _seed_everything(t.seed)
            return self.train_fn(**t.params)
        finally:
            set_rng_state(saved)

    # -- rendering ----------------------------------------------------------------------------------
    def summary(self) -> str:
        n_ok, n_failed = len(self.completed), len(self.failed)
        run = sum(t.status not in ("pending",) for t in self.trials)
        head = f"Random search: {run}/{self.planned} trials run ({n_ok} ok, {n_failed} failed)"
        if self.running:
            head += ", running"
        if self.stopped_by:
            head += (
                f", stopped by {'KeyboardInterrupt' if self.stopped_by == 'interrupt' else self.stopped_by}"
            )
        arrow = "higher" if self.mode == "max" else "lower"
        head += f"; {self.score_name}: {arrow} is better"
        best = self.best
        if best is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
            head += f"\nbest: trial {best.index}, {self.score_name}={best.score:.4g} with {params}"
        return head

    def to_text(self, max_rows: int = 60) -> str:
        frame = self.to_frame().drop(columns=["seed"])
        frame["error"] = frame["error"].fillna("").astype(str).str.slice(0, 40)
        frame["seconds"] = frame["seconds"].round(3)
        ranked = self._ranked(frame).head(max_rows)
        with _pd_options():
            table = ranked.to_string(index=False) if len(ranked) else "(no trials)"
        return f"{self.summary()}\n{table}\n{findings_text(self.findings, 'No findings about the search.')}"

    def _ranked(self, frame):
        ascending = self.mode == "min"
        return frame.sort_values("score", ascending=ascending, na_position="last", kind="stable")

    def to_html(self, max_rows: int = 60, figure: bool = True) -> str:
        parts = [f'<div class="nbdebug-search"><p><b>{_br(self.summary())}</b></p>']
        parts.append(findings_html(self.findings, "No findings about the search."))
        if figure and self.completed:
            from .._core.plot import png_html
            from .plot import search_png

            parts.append(png_html(search_png(self), alt="score vs each parameter"))
        parts.append(trials_html(self, max_rows=max_rows))
        parts.append("</div>")
        return "".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/plain": self.to_text(), "text/html": self.to_html()}

    def __repr__(self) -> str:
        best = self.best
        score = f", best {self.score_name}={best.score:.4g}" if best else ""
        return f"<SearchResult {len(self.completed)}/{self.planned} trials ok{score}>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return repr(v) if isinstance(v, str) else str(v)


def _br(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _pd_options():
    import pandas as pd

    return pd.option_context(
        "display.width", 160, "display.max_colwidth", 40, "display.float_format", "{:.4g}".format
    )


def trials_html(result: SearchResult, max_rows: int = 60) -> str:
    """Static HTML table of trials, best first; failed rows show their error. Used by the panel too."""
    esc = html.escape
    best = result.best
    names = list(result.space)
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    rows = [
        '<table class="nbdebug-search-trials" style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr><th>trial</th>{head}<th>{esc(result.score_name)}</th><th>status</th><th>time</th>"
        "<th>error</th></tr></thead><tbody>"
    ]
    order = sorted(
        (t for t in result.trials if t.status != "pending"),
        key=lambda t: (
            t.status != "running",
            t.score is None,
            -(t.score or 0) if result.mode == "max" else (t.score or 0),
            t.index,
        ),
    )
    for t in order[:max_rows]:
        style, cls = "", [f"nbdebug-status-{t.status}"]
        if best is not None and t.index == best.index:
            style, cls = "background:#e8f5e9;font-weight:bold", [*cls, "nbdebug-best"]
        elif t.status == "failed":
            style = "background:#fdecea"
        elif t.status == "running":
            style = "background:#fff8e1"
        cells = "".join(f"<td>{esc(_fmt(t.params[n]))}</td>" for n in names)
        score = "-" if t.score is None else f"{t.score:.4g}"
        secs = "-" if t.seconds is None else f"{t.seconds:.2f}s"
        err = esc((t.error or "")[:120])
        rows.append(
            f'<tr class="{" ".join(cls)}" data-trial="{t.index}" style="{style}"><td>{t.index}</td>{cells}'
            f"<td>{score}</td><td>{t.status}</td><td>{secs}</td><td>{err}</td></tr>"
        )
    if len(order) > max_rows:
        rows.append(f'<tr><td colspan="{len(names) + 5}">... {len(order) - max_rows} more</td></tr>')
    rows.append("</tbody></table>")
    cell = "padding:1px 10px 1px 0;text-align:left"
    return "".join(rows).replace("<td>", f'<td style="{cell}">').replace("<th>", f'<th style="{cell}">')


# --------------------------------------------------------------------------------------------------
# The search
# --------------------------------------------------------------------------------------------------


class _ContractError(Exception):
    """train_fn returned something that is not a score: every trial would fail the same way."""


def _seed_everything(seed: int) -> None:
    import random

    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _as_float(value: Any) -> float | None:
    """A number from a Python/numpy number or a one-element tensor/array; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if type(value).__name__ in ("Tensor", "ndarray") and getattr(value, "size", None) is not None:
        try:
            if int(np.prod(tuple(value.shape))) == 1:
                return float(value.item())
        except (TypeError, ValueError, RuntimeError):
            return None
    return None


def _read_score(value: Any, metric: str | None) -> tuple[float, dict[str, float]]:
    """(score, metrics) from what train_fn returned: a number, or a dict of metrics."""
    if isinstance(value, Mapping):
        metrics = {str(k): f for k, v in value.items() if (f := _as_float(v)) is not None}
        if not metrics:
            raise _ContractError(f"train_fn returned a dict without numeric values: {describe(value)}")
        if metric is None:
            raise _ContractError(
                f"train_fn returned metrics {sorted(metrics)}: say which one to optimize with metric=, "
                f"e.g. metric={sorted(metrics)[0]!r}"
            )
        if metric not in metrics:
            raise _ContractError(f"train_fn returned metrics {sorted(metrics)} without metric {metric!r}")
        return metrics[metric], metrics
    score = _as_float(value)
    if score is None:
        raise _ContractError(
            f"train_fn returned {describe(value)} {value!r:.60}; return the validation score (a number) "
            "or a dict of metrics"
        )
    return score, {}


def _default_metric(value: Any) -> str | None:
    if isinstance(value, Mapping):
        keys = [str(k) for k, v in value.items() if _as_float(v) is not None]
        for name in ("score", "val_score", "val_acc", "val_accuracy", "accuracy", "val_loss"):
            if name in keys:
                return name
        if len(keys) == 1:
            return keys[0]
    return None


def default_mode(metric: str | None) -> Mode:
    """'min' for a metric whose name says loss/error, else 'max' (a plain returned score is maximized)."""
    if metric and any(word in metric.lower() for word in _LOSS_WORDS):
        return "min"
    return "max"


def _notify(observers: Sequence[Any], event: str, *args: Any) -> None:
    for obs in observers:
        fn = getattr(obs, event, None)
        if fn is None and event == "on_trial_end" and callable(obs):
            fn = obs
        if fn is None:
            continue
        try:
            fn(*args)
        except Exception as e:  # a view's bug must not lose the search
            warnings.warn(
                f"search observer {type(obs).__name__}.{event} raised {type(e).__name__}: {e}", stacklevel=3
            )


def _check_signature(train_fn: Callable[..., Any], space: Mapping[str, Any]) -> None:
    """Every trial would fail the same way if train_fn cannot take the space's names: say so up front."""
    try:
        sig = inspect.signature(train_fn)
    except (TypeError, ValueError):  # builtins and some C callables: nothing to check
        return
    try:
        sig.bind(**dict.fromkeys(space))
    except TypeError as e:
        name = getattr(train_fn, "__name__", type(train_fn).__name__)
        raise NbdebugError(
            f"train_fn {name}{sig} cannot be called with the space's parameters {list(space)}: {e}"
        ) from None


def search(
    train_fn: Callable[..., Any],
    space: Mapping[str, Any],
    trials: int = 20,
    seed: int = 0,
    *,
    metric: str | None = None,
    mode: Mode | None = None,
    timeout: float | None = None,
    seed_trials: bool = True,
    observers: Sequence[Any] = (),
) -> SearchResult:
    """Random search: call `train_fn(**params)` for `trials` draws from `space`.

    `train_fn` returns a validation score (higher is better unless `mode="min"`) or a dict of metrics
    (`metric=` names the one to optimize; a name containing loss/error is minimized by default). A trial
    that raises or returns NaN/Inf is recorded as failed and the search goes on; KeyboardInterrupt (the
    kernel's stop button) ends the search and returns the trials so far. With `seed_trials`, torch,
    random and numpy are seeded per trial (`trial_seed(seed, i)`) so any trial can be replayed, and the
    caller's RNG state is restored afterwards. `timeout` (seconds) starts no new trial after it.
    """
    if not callable(train_fn):
        raise NbdebugError(
            f"train_fn must be callable (train_fn(**params) -> score), got {describe(train_fn)}"
        )
    if isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or trials < 1:
        raise NbdebugError(f"trials must be a positive int, got {trials!r}")
    if mode is not None and mode not in ("max", "min"):
        raise NbdebugError(f"mode must be 'max' or 'min', got {mode!r}")
    dists = _check_space(space)
    _check_signature(train_fn, dists)
    params = draw(dists, int(trials), seed)
    result = SearchResult(
        space=dists,
        trials=[Trial(i, p, trial_seed(seed, i)) for i, p in enumerate(params)],
        seed=seed,
        planned=int(trials),
        metric=metric,
        mode=mode or default_mode(metric),
        running=True,
        train_fn=train_fn,
        seed_trials=seed_trials,
    )
    observers = list(observers)
    saved = rng_state()
    start = time.perf_counter()
    _notify(observers, "on_start", result)
    try:
        for trial in result.trials:
            if result.stop_requested:
                result.stopped_by = "stop"
                break
            if timeout is not None and time.perf_counter() - start > timeout:
                result.stopped_by = "timeout"
                break
            trial.status = "running"
            _notify(observers, "on_trial_start", result, trial)
            t0 = time.perf_counter()
            try:
                if seed_trials:
                    _seed_everything(trial.seed)
                value = train_fn(**trial.params)
                if result.metric is None and isinstance(value, Mapping):
                    result.metric = _default_metric(value)
                    result.mode = mode or default_mode(result.metric)
                trial.score, trial.metrics = _read_score(value, result.metric)
                bad = {
                    k: v
                    for k, v in {result.score_name: trial.score, **trial.metrics}.items()
                    if not math.isfinite(v)
                }
                if bad:  # a NaN loss next to a finite accuracy is still a diverged model
                    trial.status = "failed"
                    trial.error = ", ".join(f"{k} is {v}" for k, v in bad.items())
                    trial.score = None
                else:
                    trial.status = "ok"
            except KeyboardInterrupt:
                trial.status, trial.error = "stopped", "KeyboardInterrupt"
                result.stopped_by = "interrupt"
            except _ContractError as e:
                if not result.completed:  # the first answers show the contract is broken: say so now
                    raise NbdebugError(str(e)) from None
                trial.status, trial.error = "failed", str(e)
            except Exception as e:
                trial.status, trial.error = "failed", f"{type(e).__name__}: {e}"
                trial.traceback = traceback.format_exc()
            trial.seconds = time.perf_counter() - t0
            _notify(observers, "on_trial_end", result, trial)
            if result.stopped_by == "interrupt":
                break
    except KeyboardInterrupt:  # between trials or inside an observer: keep what is done
        result.stopped_by = "interrupt"
        for t in result.trials:
            if t.status == "running":
                t.status, t.error = "stopped", "KeyboardInterrupt"
    finally:
        set_rng_state(saved)
        result.running = False
        result.seconds = time.perf_counter() - start
        _notify(observers, "on_end", result)
    return result


# --------------------------------------------------------------------------------------------------
# Findings about the search
# --------------------------------------------------------------------------------------------------


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
