"""Every notebook in notebooks/ runs top to bottom in a real kernel (nbclient), as CI and users run it.

The notebooks assert their own key results; here we also check that no cell errored and that the
outputs carry the numbers the notebooks promise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECT = {
    "06_gan_debugging.ipynb": [
        "ERROR grad-not-zeroed [optG]: generator (netG, optimizer optG): from step 2",
        "gan-d-collapse [netD]",
        "1) the generator's optimizer is never zeroed",
        "call optG.zero_grad() before the G loss's backward()",
    ],
    "04_watch_training.ipynb": [
        "ERROR grad-not-zeroed",
        "ERROR softmax-before-ce",
        "WARNING eval-mode",
        "nbdebug-watch",
        "INFO overfitting [validation]",
        "best epoch:",
    ],
    "07_search.ipynb": [
        "WARNING search-trials-failed [lr]",
        "every failure has lr >=",
        "WARNING search-edge-of-range [lr]: best lr",
        "is at the top of [0.0001, 0.01]",
        "same seed -> same draws and same scores",
    ],
    "03_sanity_checks.ipynb": [
        "passed: loss",
        "weights unchanged: True",
        "cannot-overfit",
        "plateaued",
        "2.303",
        "softmax-before-ce",
        "initial-loss",
        "unnormalized-input",
        "target-broadcast",
        "reg-not-increasing-loss",
        "gradcheck FAILED",
        "gradcheck-failed",
        "nbdebug.gradcheck passed",
        "passed: True",
    ],
    "02_memory.ipynb": [
        "parameters + gradients + Adam state = 4.00",
        "graph-retained",
        "unreachable-tensors",
        "peak(N) ~",
        "largest batch that fits in 12 GiB",
        "no CUDA device",
        "saved for backward",
    ],
    "05_predictions_and_filters.ipynb": [
        "mean filter smoothness: untrained",
        "under-predicts the rare classes",
        "CrossEntropyLoss(weight=torch.tensor([",
        "weighted cross-entropy",
    ],
    "00_tour.ipynb": [
        "forward pass failed at fc (Linear)",
        "expected last dimension 12544 (in_features) but got 10816",
        "warnings or errors: 0",
        "INFO overfitting [validation]: the model overfits",
        "WARNING unregistered-submodule [model.hidden]",
    ],
    "01_shape_walkthrough.ipynb": [
        "H_out = (14 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 28",
        "forward pass failed at to_code",
    ],
}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nb = run_notebook(path)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    text = outputs_text(nb)
    for expected in EXPECT.get(path.name, []):
        assert expected in text, f"{path.name}: {expected!r} not in outputs"
