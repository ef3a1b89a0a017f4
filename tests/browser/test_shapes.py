"""%nn_shapes in real JupyterLab + Chromium: click Next, the highlighted step and the arithmetic change;
a broken model opens on its failing layer."""

from __future__ import annotations

from tests.browser.harness import cell_errors, open_and_run

SETUP = """
import torch
from torch import nn
%load_ext nbdebug
model = nn.Sequential(
    nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
    nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
)
yy, xx = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
x = ((xx**2 + yy**2 - 0.5).abs() < 0.15).float().expand(8, 1, 28, 28).contiguous()  # a ring
"""


def _current(page) -> str:
    return page.locator(".nbdebug-shapes-table tr.nbdebug-current").inner_text()


def _detail_of_step(page, step: int) -> str:
    """The detail pane once it shows `step`: the row's highlight and the pane are two updates of the view,
    and reading the pane right after the highlight moved could still give the previous step's text."""
    page.wait_for_function(
        f"() => (document.querySelector('.nbdebug-shapes-detail')?.innerText || '').startsWith('Step {step}')"
    )
    return page.locator(".nbdebug-shapes-detail").inner_text()


def test_stepper_next_changes_highlight_and_arithmetic(page, lab, gallery):
    open_and_run(page, lab, "shapes_stepper.ipynb", [SETUP, "%nn_shapes model x"])
    assert cell_errors(page) == []
    panel = page.locator(".nbdebug-shapes")
    panel.wait_for()
    assert _current(page).startswith("0")
    page.locator(".nbdebug-shapes-next").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-shapes-table tr.nbdebug-current').dataset.step === '1'"
    )
    detail = _detail_of_step(page, 1)
    assert "H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14" in detail
    assert "Conv2d" in _current(page)
    page.locator(".nbdebug-shapes-fmap").wait_for()  # feature maps of the real activation
    gallery(panel, "shapes_panel")
    page.locator(".nbdebug-shapes-next").click()
    page.locator(".nbdebug-shapes-next").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-shapes-table tr.nbdebug-current').dataset.step === '3'"
    )
    detail = _detail_of_step(page, 3)
    assert "H_out = (14 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 28" in detail
    assert "ConvTranspose2d" in _current(page)
    page.locator(".nbdebug-shapes-prev").click()
    page.wait_for_function(
        "() => document.querySelector('.nbdebug-shapes-table tr.nbdebug-current').dataset.step === '2'"
    )


def test_broken_model_opens_on_failing_layer(page, lab, gallery):
    broken = SETUP + "broken = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.Linear(100, 10))\n"
    open_and_run(page, lab, "shapes_broken.ipynb", [broken, "%nn_shapes broken x"])
    page.locator(".nbdebug-shapes").wait_for()
    current = _current(page)
    assert current.startswith("3") and "Linear" in current
    assert page.locator(".nbdebug-shapes-table tr.nbdebug-error").count() == 1
    detail = page.locator(".nbdebug-shapes-detail").inner_text()
    assert "expected last dimension 100 (in_features) but got 5408" in detail
    gallery(page.locator(".nbdebug-shapes"), "shapes_error")
