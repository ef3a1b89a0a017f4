"""The search space: distributions drawn on the scale of their range (log for `loguniform` / `intlog`),
and the draws themselves, made up front from a private generator so the same seed gives the same trials."""

from __future__ import annotations

import abc
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._core.errors import NbdebugError, describe

RESERVED = frozenset({"trial", "score", "status", "error", "seconds", "seed"})  # to_frame() columns


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


def _seed_everything(seed: int) -> None:
    import random

    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return repr(v) if isinstance(v, str) else str(v)
