"""watch_gan never changes the training: same weights with and without it (the fixed-noise sampling
restores G's BatchNorm buffers and the RNG), and every hook and patch is gone afterwards, on success,
on an exception and on KeyboardInterrupt."""

from __future__ import annotations

import pytest
import torch

import nbdebug
from nbdebug._core import intercept as _intercept
from nbdebug._core.hooks import hook_counts
from tests import gan_loops as L


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def dcgan():
    torch.manual_seed(0)
    D, G = L.dcgan_d(), L.dcgan_g()
    return D, G, L.adam(D), L.adam(G)


def state(*models):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in models]


def test_same_weights_and_batchnorm_buffers_with_and_without_watch_gan():
    D, G, od, og = dcgan()
    torch.manual_seed(1)
    L.train(D, G, od, og, L.digits(), steps=12, nz=16)
    bare = state(D, G)
    after_rng = torch.rand(3)

    D, G, od, og = dcgan()
    torch.manual_seed(1)
    with nbdebug.watch_gan(D, G, od, og, samples_every=2) as g:  # samples G 7 times (train mode, BN)
        L.train(D, G, od, og, L.digits(), steps=12, nz=16)
    assert len(g.frames) == 7 and g.internal_errors == []
    for a, b in zip(bare, state(D, G)):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k  # weights and BatchNorm running statistics
    assert torch.equal(torch.rand(3), after_rng)  # the user's RNG stream is where it would be


def _hooks_everywhere(D, G, od, og):
    return (
        hook_counts(D),
        hook_counts(G),
        len(od._optimizer_step_pre_hooks) + len(od._optimizer_step_post_hooks),
        len(og._optimizer_step_pre_hooks) + len(og._optimizer_step_post_hooks),
    )


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc", [None, Boom, KeyboardInterrupt])
def test_hooks_and_patches_removed_on_success_exception_and_interrupt(exc):
    D, G, od, og = dcgan()
    before = _hooks_everywhere(D, G, od, og)
    backward = torch.autograd.backward
    g = nbdebug.watch_gan(D, G, od, og)

    def loop():
        with g:
            assert _hooks_everywhere(D, G, od, og) != before and _intercept.installed()
            for i, real in enumerate(L.batches(L.digits(), 32, 6)):
                L.train(D, G, od, og, real.repeat(2, 1, 1, 1), steps=1, nz=16)
                if exc is not None and i == 3:
                    raise exc("stop")

    if exc is None:
        loop()
    else:
        with pytest.raises(exc):
            loop()
    assert _hooks_everywhere(D, G, od, og) == before
    assert not _intercept.installed() and torch.autograd.backward is backward
    assert g.exc_type is exc and not g.running
    assert g.steps == (6 if exc is None else 4)  # what was seen stays readable
    assert len(g.history) == g.steps and len(g._fakes) == 0  # no tensor of the run is kept alive
    if exc is not None:
        assert "stopped by" in repr(g)


def test_a_watch_cannot_be_entered_twice():
    D, G, od, og = dcgan()
    g = nbdebug.watch_gan(D, G, od, og)
    with g:
        with pytest.raises(nbdebug.NbdebugError, match="already running"):
            g.__enter__()
