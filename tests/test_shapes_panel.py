"""The stepper panel is a view over a Trace: it moves through steps and shows their arithmetic."""

from __future__ import annotations

import torch

import nbdebug
from nbdebug.shapes.panel import ShapesPanel
from tests.models import DenoisingAutoencoder, SmallCNN


def test_panel_steps_through_trace():
    panel = nbdebug.shapes(DenoisingAutoencoder(), torch.randn(2, 1, 28, 28))
    t = panel.trace
    assert panel.current == 0 and panel.prev.disabled
    assert 'data-step="0"' in panel.table.value and "nbdebug-current" in panel.table.value
    conv = t["encoder.0"].index
    for _ in range(conv):
        panel.next.click()
    assert panel.current == conv
    assert "H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14" in panel.detail.value
    assert panel.fmap.value[:4] == b"\x89PNG"  # first channels of the real activation
    panel.prev.click()
    assert panel.current == conv - 1
    panel.slider.value = len(t.steps) - 1
    assert panel.next.disabled and f"{len(t.steps)} / {len(t.steps)}" in panel.position.value


def test_panel_opens_on_failing_step():
    panel = nbdebug.shapes(SmallCNN(in_features=3136), torch.randn(2, 1, 14, 14))
    assert panel.current == panel.trace.error.step
    assert "nbdebug-error" in panel.table.value
    assert "expected last dimension 3136" in panel.detail.value
    assert "Forward pass failed at" in panel.summary.value


def test_panel_mimebundle_has_static_fallback():
    panel = ShapesPanel(nbdebug.trace(DenoisingAutoencoder(), torch.randn(1, 1, 28, 28)))
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "<table" in bundle["text/html"] and "encoder.0" in bundle["text/plain"]
