"""`watch` on a `torch.compile`d model: the same findings and statistics as on the eager model, the
training untouched, and nothing from dynamo in the user's output (no graph break, no recompilation)."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch
import torch.nn.functional as F

import nbdebug
from tests.integration_models import EXPECTED, Net
from tests.watch_loops import codes, digits, serious, single_thread  # noqa: F401

pytestmark = pytest.mark.slow  # ecosystem tests: `make test` runs them, `make check` does not

STATS = ["step", "layer", "act_mean", "act_std", "dead_frac", "saturated_frac", "grad_norm", "update_ratio"]


def _train(bug: str, how: str, backend: str = "eager", watched: bool = True):
    """3 epochs of the digits MLP; `how`: 'eager', 'wrapper' (torch.compile(model)) or 'in-place'
    (model.compile())."""
    torch.manual_seed(0)
    x, y = digits()
    net = Net(bug)
    model = net
    if how == "wrapper":
        model = torch.compile(net, backend=backend)
    elif how == "in-place":
        net.compile(backend=backend)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ctx = nbdebug.watch(model, opt) if watched else None
    if ctx is not None:
        ctx.__enter__()
    for _ in range(3):
        for i in range(0, 640, 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    if ctx is not None:
        ctx.__exit__(None, None, None)
    return ctx, net


@pytest.fixture
def dynamo_quiet(caplog, capfd):
    """Fresh dynamo state; after the test, nothing dynamo said: no graph break, one graph, no warning."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            yield
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] <= 2  # the compiled forward (and its backward)
    said = [r.getMessage() for r in caplog.records if r.name.startswith("torch")]
    said += [
        str(w.message) for w in caught if "torch/_dynamo" in w.filename or "torch/_inductor" in w.filename
    ]
    assert said == []
    err = capfd.readouterr().err
    assert "Graph break" not in err and "recompil" not in err.lower()


@pytest.mark.parametrize("how", ["wrapper", "in-place"])
@pytest.mark.parametrize("bug", ["healthy", "dead_relu", "softmax"])
def test_same_findings_and_statistics_as_eager(bug, how, dynamo_quiet):
    compiled, _ = _train(bug, how)
    eager, _ = _train(bug, "eager")
    assert (
        compiled.internal_errors == [] and compiled.monitor.compiled_hooks.replays == 8
    )  # steps 1-5, 10, 20, 30
    assert compiled.history.equals(eager.history)  # backend="eager": the same numbers, step by step
    a, b = compiled.layer_stats()[STATS], eager.layer_stats()[STATS]
    assert list(a["layer"]) == list(b["layer"])  # named as in the model, not `_orig_mod.body.0`
    assert a.equals(b)
    assert codes(compiled) == codes(eager)
    assert [f.where for f in compiled.findings] == [f.where for f in eager.findings]
    if bug == "healthy":
        assert serious(compiled) == []
    else:
        assert EXPECTED[bug] in codes(compiled)


def test_training_unchanged(dynamo_quiet):
    _, a = _train("healthy", "wrapper", watched=False)
    _, b = _train("healthy", "wrapper", watched=True)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_default_backend(dynamo_quiet):
    """inductor (compiles C++ on the CPU: ~15 s): the same findings as eager, the training compiled."""
    compiled, _ = _train("dead_relu", "wrapper", backend="inductor")
    eager, _ = _train("dead_relu", "eager")
    assert codes(compiled) == codes(eager) and "dead-relu" in codes(compiled)
    assert compiled.history["loss"].tolist() == pytest.approx(eager.history["loss"].tolist(), rel=1e-4)
    assert compiled.internal_errors == []
