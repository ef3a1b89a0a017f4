"""notebooks/02_memory.ipynb runs top to bottom in a real kernel and shows what it promises."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook


@pytest.mark.notebook
def test_memory_notebook_runs():
    nb = run_notebook(ROOT / "notebooks" / "02_memory.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    text = outputs_text(nb)
    for expected in (
        "parameters + gradients + Adam state = 4.00",
        "graph-retained",
        "unreachable-tensors",
        "peak(N) ~",
        "largest batch that fits in 12 GiB",
        "no CUDA device",
        "saved for backward",
    ):
        assert expected in text, f"{expected!r} not in the notebook's outputs"
