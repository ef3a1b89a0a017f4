"""notebooks/03_sanity_checks.ipynb runs in a real kernel and shows each lesson's healthy and broken model."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook


@pytest.mark.notebook
def test_sanity_notebook_runs_and_names_each_bug():
    nb = run_notebook(ROOT / "notebooks" / "03_sanity_checks.ipynb", timeout=300)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    text = outputs_text(nb)
    # lesson 1: the healthy CNN fits 20 digits and is given back; the bottleneck cannot
    assert "passed: loss" in text and "weights unchanged: True" in text
    assert "cannot-overfit" in text and "plateaued" in text
    # lesson 2: chance level, and each broken model named
    assert "ln(10)" in text or "chance level 2.303" in text
    for code in (
        "softmax-before-ce",
        "initial-loss",
        "unnormalized-input",
        "target-broadcast",
        "reg-not-increasing-loss",
    ):
        assert code in text, code
    # lesson 3: the wrong backward fails, the right one and the CNN pass
    assert "gradcheck FAILED" in text and "gradcheck-failed" in text
    assert "nbdebug.gradcheck passed" in text and "passed: True" in text
