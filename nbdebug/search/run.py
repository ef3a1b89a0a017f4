"""Hyperparameter random search on a log scale, with findings about the search itself.

CS231n ('Hyperparameter optimization') and Bergstra & Bengio 2012: prefer random search to grid
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

import inspect
import math
import numbers
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._core.errors import NbdebugError, describe
from .._core.hooks import rng_state, set_rng_state
from .result import Mode, SearchResult, Trial
from .space import _check_space, _seed_everything, draw, trial_seed

_LOSS_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "cost")


class _ContractError(Exception):
    """train_fn returned something that is not a score: every trial would fail the same way."""


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
