"""notebooks/07_search.ipynb runs top to bottom in a real kernel and prints the findings it promises."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook


@pytest.mark.notebook
def test_search_notebook_runs():
    nb = run_notebook(ROOT / "notebooks" / "07_search.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    text = outputs_text(nb)
    assert "WARNING search-trials-failed [lr]" in text and "every failure has lr >=" in text
    assert "WARNING search-edge-of-range [lr]: best lr" in text and "is at the top of [0.0001, 0.01]" in text
    assert "same seed -> same draws and same scores" in text
    assert "application/vnd.jupyter.widget-view+json" in str(nb.cells)  # the live panel was displayed
