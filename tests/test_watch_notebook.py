"""notebooks/04_watch_training.ipynb runs top to bottom in a real kernel and names its three bugs."""

from __future__ import annotations

import time

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook


@pytest.mark.notebook
def test_watch_notebook_runs():
    start = time.perf_counter()
    nb = run_notebook(ROOT / "notebooks" / "04_watch_training.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    text = outputs_text(nb)
    for expected in (
        "ERROR grad-not-zeroed",
        "ERROR softmax-before-ce",
        "WARNING eval-mode",
        "nbdebug-watch",
    ):
        assert expected in text, expected
    assert time.perf_counter() - start < 120
