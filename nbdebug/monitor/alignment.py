"""Whether the training labels belong to their inputs: `labels-misaligned` (inputs shuffled without their
labels, labels read before the table was shuffled).

Two signals, both needed. (1) The inputs do not predict the labels: on the first ROWS training examples,
each example's nearest other example (Euclidean, inputs standardized; token ids as a bag of tokens) has
its label no more often than chance (sum_c p_c^2) plus two standard errors; aligned data of any learnable
task is far above (the digits: 97% against 10%). (2) The model learns nothing beyond the label
frequencies: the mean training loss of the last LAST_STEPS steps is still >= FLAT of the loss of a
predictor that knows only the class shares (the label entropy for cross-entropy; the mean binary entropy
of each class for one-hot BCE), after at least MIN_STEPS steps. Each alone has an innocent reading (a hard
task, a learning rate too low); together they say the labels are independent of the inputs. Not judged: a
dominant class (neighbours agree by chance), several loss calls per step, weighted or smoothed losses.

Costs: the first ROWS training rows are copied to the CPU (a few batches, once); the nearest-neighbour
pass (ROWS x ROWS distances) runs only when signal (2) holds.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch

ROWS = 400  # training examples kept for the nearest-neighbour test
MAX_FEATURES = 4096  # input values per example kept (evenly strided over the input)
VOCAB = 4096  # token ids beyond this share the last bag
MAX_CHANCE = 0.5  # judged only without a dominant class (sum of squared class shares at most this)
MIN_STEPS = 100  # training steps before the loss is judged
LAST_STEPS = 30
FLAT = 0.75  # the loss of the last steps is still >= this share of the frequency-only loss (memorizing
# random labels lowers it slowly: the LSTM of DrexelChatbot#15 at 0.8 after 8 epochs; aligned data goes far below)


class AlignmentRows:
    """The first ROWS training examples (features on the CPU) and their class labels."""

    def __init__(self) -> None:
        self.features: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.kind: str | None = None  # "ce" (class indices) or "onehot" (BCE with one-hot rows)
        self.n = 0
        self._step = 0  # the step of the last training loss call

    def add(self, name: str, x: Any, target: Any, kwargs: dict, step: int) -> None:
        """One training loss call of step `step`: `x` the model's input, `target` the loss's target. A step
        with two loss calls (two heads, a multi-task loss) or a weighted or smoothed loss gives up the test:
        its loss is not comparable with the frequency-only one."""
        weighted = any(kwargs.get(k) is not None for k in ("weight", "pos_weight")) or kwargs.get(
            "label_smoothing", 0.0
        )
        if self._step == step or weighted or kwargs.get("reduction", "mean") != "mean":
            self.kind, self.n, self.features, self.labels = "mixed", ROWS, [], []
        self._step = step
        if self.n >= ROWS or not isinstance(x, torch.Tensor) or not isinstance(target, torch.Tensor):
            return
        if x.dim() < 2 or target.dim() < 1 or x.shape[0] != target.shape[0]:
            return
        t = target.detach()
        if name in ("cross_entropy", "nll_loss") and t.dim() == 1 and not t.is_floating_point():
            kind, labels = "ce", t
        elif name.startswith("binary_cross_entropy") and t.dim() == 2 and bool(((t == 0) | (t == 1)).all()):
            if not bool((t.sum(1) == 1).all()):
                return
            kind, labels = "onehot", t.argmax(1)
        else:
            return
        if self.kind not in (None, kind):
            return
        self.kind = kind
        k = min(ROWS - self.n, int(x.shape[0]))
        xs = x.detach()[:k]
        if xs.is_floating_point():
            flat = xs.reshape(k, -1)
            feats = flat[:, :: -(-flat.shape[1] // MAX_FEATURES)].float()  # spread over the whole input
        else:  # token ids: a bag of tokens
            ids = xs.reshape(k, -1).long().clamp(0, VOCAB - 1)
            feats = torch.zeros(k, VOCAB).scatter_add_(1, ids.cpu(), torch.ones(ids.shape))
        self.features.append(feats.cpu())
        self.labels.append(labels[:k].cpu())
        self.n += k

    def evidence(self) -> dict[str, Any] | None:
        """Nearest-neighbour agreement and chance over the kept rows; None with too few rows or classes."""
        if self.n < ROWS // 2 or self.kind in (None, "mixed"):
            return None
        if len({f.shape[1] for f in self.features}) != 1:
            return None
        x = torch.cat(self.features)
        y = torch.cat(self.labels)
        counts = Counter(y.tolist())
        if len(counts) < 2:
            return None
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        d = torch.cdist(x, x)
        d.fill_diagonal_(math.inf)
        agree = float((y[d.argmin(1)] == y).float().mean())
        n = len(y)
        shares = [c / n for c in counts.values()]
        chance = sum(p * p for p in shares)
        if chance > MAX_CHANCE:  # a dominant class: neighbours share its label by chance, no evidence
            return None
        if self.kind == "ce":
            baseline = -sum(p * math.log(p) for p in shares)
        else:  # mean over the one-hot columns seen of the binary entropy of each class's share
            baseline = sum(-(p * math.log(p) + (1 - p) * math.log(1 - p)) for p in shares if p < 1) / len(
                shares
            )
        return {"agree": agree, "chance": chance, "rows": n, "classes": len(counts), "baseline": baseline,
                "kind": self.kind}  # fmt: skip


def misaligned(evidence: dict[str, Any] | None, losses: list[float]) -> dict[str, Any] | None:
    """Both signals of the module docstring, or None."""
    if evidence is None or len(losses) < MIN_STEPS:
        return None
    last = [v for v in losses[-LAST_STEPS:] if math.isfinite(v)]
    if not last:
        return None
    loss = sum(last) / len(last)
    e = evidence
    margin = 2 * math.sqrt(e["chance"] * (1 - e["chance"]) / e["rows"])
    if e["agree"] > e["chance"] + margin or loss < FLAT * e["baseline"]:
        return None
    return {**e, "loss": loss, "margin": margin}
