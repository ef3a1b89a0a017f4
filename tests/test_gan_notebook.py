"""notebooks/06_gan_debugging.ipynb runs top to bottom in a real kernel and tells the notes' story:
the broken loop named (missing optG.zero_grad(), then D's collapse), the fixed loop silent."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, outputs_text, run_notebook


@pytest.mark.notebook
def test_gan_debugging_notebook_runs_and_names_the_bug():
    nb = run_notebook(ROOT / "notebooks" / "06_gan_debugging.ipynb")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"] if errors else ""
    text = outputs_text(nb)
    assert "ERROR grad-not-zeroed [optG]: generator (netG, optimizer optG): from step 2" in text
    assert "gan-d-collapse [netD]" in text and "1) the generator's optimizer is never zeroed" in text
    assert "call optG.zero_grad() before the G loss's backward()" in text
    assert (
        "No findings: the GAN trains healthily." in text
        or "INFO" not in text.split("GanWatch (finished): 200")[-1]
    )
    assert "image/png" in str(nb.cells[-1].get("outputs", []))
