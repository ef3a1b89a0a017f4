"""What `nbdebug.search` returns: the trials, the best one, findings about the search, and renderings."""

from __future__ import annotations

import html
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from .._core.errors import NbdebugError
from .._core.findings import Finding, findings_html, findings_text
from .._core.hooks import rng_state, set_rng_state
from .._core.result import Result
from .effects import search_findings
from .space import Distribution, _fmt, _seed_everything

Mode = Literal["max", "min"]


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


@dataclass(repr=False)
class SearchResult(Result):
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

    def _html_key(self) -> Hashable:
        return (
            self.running,
            len(self.trials),
            sum(t.status == "pending" for t in self.trials),
            self.stopped_by,
        )

    def to_html(self, max_rows: int = 60, figure: bool = True) -> str:
        """Static HTML: summary, findings, score against each parameter, the ranked trials."""
        return super().to_html() if (max_rows, figure) == (60, True) else self._html(max_rows, figure)

    def _html(self, max_rows: int = 60, figure: bool = True) -> str:
        parts = [f'<div class="nbdebug-search"><p><b>{_br(self.summary())}</b></p>']
        parts.append(findings_html(self.findings, "No findings about the search."))
        if figure and self.completed:
            from .._core.plot import png_html
            from .plot import search_png

            parts.append(png_html(search_png(self), alt="score vs each parameter"))
        parts.append(trials_html(self, max_rows=max_rows))
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        best = self.best
        score = f", best {self.score_name}={best.score:.4g}" if best else ""
        return f"<SearchResult {len(self.completed)}/{self.planned} trials ok{score}>"


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
