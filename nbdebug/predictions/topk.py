"""`TopkTracker`: the output distribution per epoch during training (the true class's probability keeps
rising after the accuracy plateaus), from each batch's logits; no hooks, the user feeds it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .._core.errors import NbdebugError
from .compute import _check_scores, _labels_of


def snapshot(outputs: torch.Tensor, labels: torch.Tensor | None = None, k: int = 5) -> dict[str, float]:
    """Summary of one set of logits: accuracy, mean true-class probability, entropy and the mean
    sorted top-k probabilities p1..pk. The drift of these over epochs is what argmax accuracy hides."""
    tracker = TopkTracker(k=k)
    tracker.update(outputs, labels)
    return tracker.end_epoch()


class TopkTracker:
    """Accumulates per-batch outputs into per-epoch rows of the output distribution's shape.

    `update(logits, labels)` after each forward pass (cheap: running sums, no stored tensors),
    `end_epoch()` once per epoch; `history` is a DataFrame with epoch, n, accuracy, true_prob,
    entropy, p1..pk. `drift_figure(history)` (`from nbdebug.predictions.plot import drift_figure`) draws it.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = k
        self.rows: list[dict[str, float]] = []
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._n_labelled = 0
        self._correct = 0.0
        self._true_prob = 0.0
        self._entropy = 0.0
        self._topk: torch.Tensor | None = None

    def update(self, outputs: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        with torch.no_grad():
            out = outputs.detach().float()
            _check_scores(out)
            logp = torch.log_softmax(out, dim=1)
            p = logp.exp()
            k = min(self.k, p.shape[1])
            top = p.topk(k, dim=1).values.sum(0).cpu()
            self._topk = top if self._topk is None else self._topk + top
            self._entropy += float(-(p * logp).sum())
            self._n += p.shape[0]
            if labels is not None:
                y = _labels_of(labels, out.cpu()).to(p.device)
                self._n_labelled += len(y)
                self._correct += float((p.argmax(1) == y).sum())
                self._true_prob += float(p.gather(1, y.unsqueeze(1)).sum())

    def end_epoch(self, epoch: int | None = None) -> dict[str, float]:
        """Close the epoch: append its row to `rows` and return it."""
        if self._n == 0:
            raise NbdebugError("TopkTracker.end_epoch() called before any update()")
        row: dict[str, float] = {"epoch": len(self.rows) if epoch is None else epoch, "n": self._n}
        labelled = self._n_labelled or np.nan
        row["accuracy"] = self._correct / labelled
        row["true_prob"] = self._true_prob / labelled
        row["entropy"] = self._entropy / self._n
        for j, v in enumerate((self._topk / self._n).tolist()):
            row[f"p{j + 1}"] = v
        self.rows.append(row)
        self._reset()
        return row

    @property
    def history(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
