"""The notebook's side of a DDP run: `with nbdebug.watch_ranks() as run: <launch the ranks>`, then `run`.

The ranks run in other processes (a fork-based launcher), so their `Watch` objects never come back. Each
rank's `DistributedWatch` writes a snapshot of its final result (numbers and findings, no tensor, no
model) into the folder `watch_ranks()` names in `NBDEBUG_RANKS_DIR`; `DistributedRun` reads them when the
block ends and shows rank 0's result, whose `ddp-*` findings compare all ranks, with the per-rank table.
"""

from __future__ import annotations

import html
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .._core.findings import Finding, findings_html
from .._core.result import Result
from .distributed import ENV_DIR


@dataclass
class WatchSnapshot:
    """What a rank's watch found, as data the notebook can unpickle (no model, no tensor)."""

    rank: int
    world_size: int
    summary: str
    findings: list[Finding]
    history: Any
    epochs: Any
    layer_stats: Any
    ranks: Any
    steps: int
    gathers: int = 0  # sampled steps at which the ranks exchanged their samples
    internal_errors: list[str] = field(default_factory=list)
    gather_errors: list[str] = field(default_factory=list)


def snapshot(w: Any) -> WatchSnapshot:
    """The final state of a `DistributedWatch`, for `DistributedRun`."""
    return WatchSnapshot(
        rank=w.rank,
        world_size=w.world_size,
        summary=w.summary(),
        findings=list(w.findings),
        history=w.history,
        epochs=w.epochs,
        layer_stats=w.layer_stats(),
        ranks=w.ranks,
        steps=w.steps,
        gathers=len(w.gathers),
        internal_errors=list(w.internal_errors),
        gather_errors=list(w.gather_errors),
    )


class DistributedRun(Result):
    """One result for a DDP run launched from the notebook: rank 0's findings (the `ddp-*` ones compare the
    ranks), history, epochs and layer statistics, `ranks` (one row per rank) and `rank_results` (each
    rank's own snapshot). A context manager: the ranks launched inside its block report to it."""

    no_findings = "No findings: the run looks healthy on every rank."

    def __init__(self) -> None:
        self.rank_results: dict[int, WatchSnapshot] = {}
        self.folder: str | None = None
        self._previous: str | None = None

    def __enter__(self) -> DistributedRun:
        self.folder = tempfile.mkdtemp(prefix="nbdebug-ranks-")
        self._previous = os.environ.get(ENV_DIR)
        os.environ[ENV_DIR] = self.folder  # inherited by the processes the launcher starts
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = self._previous
        self.collect()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def collect(self) -> None:
        """Read the snapshots the ranks wrote (called when the block ends)."""
        if self.folder is None or not os.path.isdir(self.folder):
            return
        for name in sorted(os.listdir(self.folder)):
            if name.startswith("rank") and name.endswith(".pkl"):
                with open(os.path.join(self.folder, name), "rb") as f:
                    snap = pickle.load(f)
                self.rank_results[snap.rank] = snap

    @property
    def main(self) -> WatchSnapshot | None:
        """Rank 0's snapshot (or the lowest rank that reported)."""
        return self.rank_results[min(self.rank_results)] if self.rank_results else None

    @property
    def findings(self) -> list[Finding]:
        return self.main.findings if self.main else []

    @property
    def history(self):
        return self.main.history if self.main else None

    @property
    def epochs(self):
        return self.main.epochs if self.main else None

    @property
    def ranks(self):
        return self.main.ranks if self.main else None

    @property
    def steps(self) -> int:
        return self.main.steps if self.main else 0

    def layer_stats(self, last: bool = False):
        if self.main is None:
            return None
        stats = self.main.layer_stats
        return stats[stats["step"] == stats["step"].max()] if last and len(stats) else stats

    def summary(self) -> str:
        m = self.main
        if m is None:
            return "DistributedRun: no rank reported (launch the ranks inside `with nbdebug.watch_ranks():`)"
        missing = sorted(set(range(m.world_size)) - set(self.rank_results))
        gone = f"; no report from rank(s) {missing}" if missing else ""
        return f"DDP run, {m.world_size} ranks{gone}. Rank {m.rank}: {m.summary}"

    def _html(self) -> str:
        parts = [
            f"<b>{html.escape(self.summary())}</b>",
            findings_html(self.findings, empty=self.no_findings),
        ]
        m = self.main
        if m is not None and m.steps:
            from .._core.plot import figure_png, png_html
            from .plot import loss_figure

            parts.append(png_html(figure_png(loss_figure(m)), alt="loss curve (rank 0)"))
        if m is not None and len(m.ranks):
            parts.append("<h4>Ranks</h4>" + m.ranks.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        return '<div class="nbdebug-watch nbdebug-ranks">' + "".join(parts) + "</div>"

    def _html_key(self) -> Any:
        return tuple(sorted(self.rank_results))


def watch_ranks() -> DistributedRun:
    """In the notebook, around a launcher that forks the ranks of a DDP run in which each rank uses
    `nbdebug.watch(ddp_model, optimizer)`: `with nbdebug.watch_ranks() as run: notebook_launcher(...)`, then
    `run` shows one result for all ranks (see `monitor/distributed.py`)."""
    return DistributedRun()
