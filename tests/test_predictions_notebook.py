"""notebooks/05_predictions_and_filters.ipynb executes in a real kernel and shows what it claims."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook

NOTEBOOK = ROOT / "notebooks" / "05_predictions_and_filters.ipynb"


@pytest.mark.notebook
def test_notebook_runs_and_shows_the_findings():
    start = time.monotonic()
    nb = run_notebook(NOTEBOOK)
    elapsed = time.monotonic() - start
    text = outputs_text(nb)
    assert "mean filter smoothness: untrained" in text
    assert "class-imbalance" in text and "under-predicts the rare classes" in text
    assert "CrossEntropyLoss(weight=torch.tensor([" in text
    assert "weighted cross-entropy" in text
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells)  # the panels were displayed
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert elapsed < 120, f"notebook took {elapsed:.0f} s"
