"""%%nn_gan through a real IPython shell, and the GAN panel as a view over a GanWatch."""

from __future__ import annotations

import pytest
import torch
from IPython.core.error import UsageError

import nbdebug
from nbdebug._core import intercept as _intercept
from nbdebug._core.hooks import hook_counts
from nbdebug.monitor.gan_panel import GanPanel, gan_panel
from tests import gan_loops as L


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SETUP = """
import torch
from torch import nn
from tests import gan_loops as L
torch.manual_seed(0)
x = L.mixture()
netD, netG = L.mlp_d(), L.mlp_g()
optD, optG = L.adam(netD), L.adam(netG)
bce = nn.BCEWithLogitsLoss()
"""

LOOP = """
for real in L.batches(x, 64, {steps}):
    z = torch.randn(64, 8)
    optD.zero_grad()
    fake = netG(z)
    errD = bce(netD(real), torch.ones(64, 1)) + bce(netD(fake.detach()), torch.zeros(64, 1))
    errD.backward()
    optD.step()
    {zero}
    errG = bce(netD(fake), torch.ones(64, 1))
    errG.backward()
    optG.step()
"""


@pytest.mark.parametrize("bug", [True, False])
def test_cell_magic_names_the_missing_zero_grad_with_the_notebook_names(ip, bug):
    ip.run_cell(SETUP).raise_error()
    before = hook_counts(ip.user_ns["netG"])
    cell = LOOP.format(zero="pass" if bug else "optG.zero_grad()", steps=30)
    g = ip.run_cell_magic("nn_gan", "netD netG optD optG --samples-every 10 --no-panel -o", cell)
    assert isinstance(g, nbdebug.GanWatch)
    assert g.steps == 30 and [f.step for f in g.frames] == [1, 10, 20, 30]
    found = {f.code: f for f in g.findings}
    assert ("grad-not-zeroed" in found) is bug
    if bug:
        f = found["grad-not-zeroed"]
        assert f.where == "optG" and "optG.zero_grad()" in f.hint and "generator (netG" in f.message
    else:
        assert g.findings == []
    assert hook_counts(ip.user_ns["netG"]) == before and not _intercept.installed()


@pytest.mark.slow
def test_cell_magic_with_panel_exception_and_options(ip):
    ip.run_cell(SETUP).raise_error()
    ip.run_cell("fixed = torch.randn(9, 8)").raise_error()
    cell = LOOP.format(zero="optG.zero_grad()", steps=5) + "\nraise ValueError('boom in the loop')"
    with pytest.raises(ValueError, match="boom in the loop"):
        ip.run_cell_magic("nn_gan", "netD netG optD optG --noise fixed --real x[:200]", cell)
    assert not _intercept.installed() and hook_counts(ip.user_ns["netD"]) == {}


def test_cell_magic_usage_errors(ip):
    ip.run_cell(SETUP).raise_error()
    with pytest.raises(UsageError, match="generator 'nope' is not defined"):
        ip.run_cell_magic("nn_gan", "netD nope optD optG", "pass")
    with pytest.raises(UsageError, match="d_optimizer holds 6 parameters, none of them the discriminator's"):
        ip.run_cell_magic("nn_gan", "netD netG optG optD", "pass")
    with pytest.raises(UsageError, match="samples_every must be a positive integer"):
        ip.run_cell_magic("nn_gan", "netD netG optD optG --samples-every 0", "pass")
    with pytest.raises(UsageError, match="needs an nn.Module as discriminator, got Tensor"):
        ip.run_cell_magic("nn_gan", "x netG optD optG", "pass")


def test_magic_docstring_documents_every_option(ip):
    doc = ip.find_cell_magic("nn_gan").__doc__
    for opt in (
        "--every",
        "--samples-every",
        "--n-samples",
        "--noise",
        "--real",
        "--interval",
        "--no-panel",
        "-o",
    ):
        assert opt in doc


@pytest.mark.slow
def test_panel_follows_the_run_and_its_sample_grid_refreshes():
    torch.manual_seed(0)
    D, G = L.mlp_d(), L.mlp_g()
    od, og = L.adam(D), L.adam(G)
    g = nbdebug.watch_gan(D, G, od, og, samples_every=5, update_interval=0.0)
    panel = gan_panel(g)
    assert isinstance(panel, GanPanel) and g.on_update == panel.refresh
    assert "samples appear after" in panel.samples_label.value
    grids = []
    with g:
        for real in L.batches(L.mixture(), 64, 12):
            L.train(D, G, od, og, real, steps=1, batch_size=64)
            panel.redraw(curves=False)  # refresh() as GanWatch calls it, without the panel's time throttling
            grids.append((g.steps, panel.frame.max, panel.samples_img.value))
    assert g.updates >= 2  # GanWatch called the panel itself during the run (and once at the end)
    panel.finish()
    # a new grid image each time G produced a frame (steps 1, 5, 10), the slider following it
    assert [m for _, m, _ in grids] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
    assert len({img for _, _, img in grids}) == 3
    assert 'data-step="10"' in panel.samples_label.value and "frame 3 of 3" in panel.samples_label.value
    assert panel.curves_img.value and panel.ratios_img.value
    assert 'data-state="finished"' in panel.status.value and "G step 12" in panel.status.value
    # browsing back shows the earlier frame
    panel.frame.value = 0
    assert 'data-step="1"' in panel.samples_label.value
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "nbdebug-gan" in bundle["text/html"]
