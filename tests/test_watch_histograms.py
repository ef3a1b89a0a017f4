"""Histograms binned when they are asked for (nbdebug/monitor/histqueue.py): a histogram step keeps a copy of
each layer's sampled values, and `Watch.histograms` (or the panel) bins them. The copies must be the values
of that step, whatever the forward, the next backward or `zero_grad` does to the tensors afterwards."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug.monitor import histqueue
from tests.watch_loops import digits, mlp, single_thread  # noqa: F401  (autouse fixture)


def _histc(t: torch.Tensor, bins: int = 30) -> tuple[float, float, list[int]]:
    lo, hi = float(t.min()), float(t.max())
    return lo, hi, [int(c) for c in torch.histc(t.float(), bins=bins, min=lo, max=hi).tolist()]


def test_an_activation_changed_in_place_later_keeps_the_histogram_of_its_own_values():
    """A Linear whose output a ReLU(inplace=True) overwrites in the same forward: its histogram is of the
    Linear's values (negatives included), not of what the ReLU left in that memory."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(inplace=True), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    x, y = torch.randn(4, 8), torch.randint(0, 3, (4,))
    with nbdebug.watch(model, opt, every=1) as w:
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    got = w.histograms("0", "activation")
    assert [s for s, *_ in got] == [1, 2, 3]
    for (_, lo, hi, counts), out in zip(got, seen):
        assert lo < 0 and (lo, hi, counts) == _histc(out)


def test_a_gradient_histogram_is_of_its_steps_gradient_after_later_backward_passes():
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = digits()
    grads = []
    with nbdebug.watch(model, opt, every=1) as w:
        for i in range(4):
            opt.zero_grad()
            F.cross_entropy(model(x[i * 32 : i * 32 + 32]), y[i * 32 : i * 32 + 32]).backward()
            grads.append(torch.cat([model[2].weight.grad.flatten(), model[2].bias.grad]).clone())
            opt.step()
    queue = w.monitor.hists
    assert queue.values > 0  # nobody asked yet: nothing binned in the loop
    before = queue.values
    got = w.histograms("2", "gradient")
    # only the series asked for is binned: the other layers' and this layer's activations still wait
    waiting = [(s.layer, attr) for items in queue.waiting.values() for s, attr, _ in items]
    assert (
        ("2", "grad_hist") not in waiting and ("2", "act_hist") in waiting and ("0", "grad_hist") in waiting
    )
    assert queue.values == before - sum(g.numel() for g in grads)
    assert len(got) == 4
    for (_, lo, hi, counts), g in zip(got, grads):
        assert sum(counts) == g.numel() and (lo, hi, counts) == _histc(g)


def test_values_waiting_are_bounded_and_thinned_out_steps_dropped(monkeypatch):
    """Past MAX_WAITING values (or MAX_STEPS steps) the loop bins what waits; a step `max_samples` thins out
    takes its values with it; what is binned is the same either way."""
    x, y = digits()

    def run(limit: int | None, steps: int = histqueue.MAX_STEPS) -> nbdebug.Watch:
        if limit is not None:
            monkeypatch.setattr(histqueue, "MAX_WAITING", limit)
        monkeypatch.setattr(histqueue, "MAX_STEPS", steps)
        torch.manual_seed(0)
        model = mlp()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with nbdebug.watch(model, opt, every=1, max_samples=6) as w:
            for i in range(20):
                opt.zero_grad()
                F.cross_entropy(model(x[i * 32 : i * 32 + 32]), y[i * 32 : i * 32 + 32]).backward()
                opt.step()
                assert w.monitor.hists.values <= (limit or histqueue.MAX_WAITING)
                assert len(w.monitor.hists.waiting) <= steps
                assert set(w.monitor.hists.waiting) <= set(w.monitor.samples)
        return w

    lazy = run(None)
    assert lazy.monitor.hists.waiting
    bounded = run(3000)  # a few layers' values: binned in the loop every step or two
    assert bounded.monitor.hists.values <= 3000
    few = run(None, steps=2)  # binned in the loop every third step
    assert len(few.monitor.hists.waiting) <= 2
    for layer in lazy.layers():
        for kind in ("activation", "gradient"):
            assert bounded.histograms(layer, kind) == lazy.histograms(layer, kind)
            assert few.histograms(layer, kind) == lazy.histograms(layer, kind)
    assert [s for s, *_ in lazy.histograms("0")] == sorted(lazy.monitor.samples)


def test_the_queue_bins_each_histogram_as_histogram_does_alone(monkeypatch):
    """Values of several lengths (a short layer, a long one, an empty one, one with NaN), binned in groups of
    one length and chunks of CHUNK: each gets what `summaries.histogram` gives it alone."""
    from nbdebug.monitor.records import LayerSample
    from nbdebug.monitor.summaries import histogram

    monkeypatch.setattr(histqueue, "CHUNK", 2)
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(n, generator=g) * (1 + n % 7) for n in (50, 4096, 4096, 4096, 300, 4096, 50)]
    tensors += [torch.empty(0), torch.randn(100, generator=g).index_fill_(0, torch.tensor([3]), float("nan"))]
    q = histqueue.HistogramQueue(30)
    samples = [LayerSample(step=1 + i % 3, layer=str(i), type="") for i in range(len(tensors))]
    for s, t in zip(samples, tensors):
        q.add(s.step, s, "act_hist", histqueue.hist_values(t))
    assert q.values == sum(t.numel() for t in tensors)
    q.resolve("4", "act_hist")  # one series: the others wait
    assert samples[4].act_hist == histogram(tensors[4], 30) and samples[1].act_hist is None
    assert q.values == sum(t.numel() for t in tensors) - 300 and len(q.waiting) == 3
    q.resolve("1", "grad_hist")  # no such series: nothing binned
    assert samples[1].act_hist is None
    q.resolve()
    assert q.values == 0 and not q.waiting
    for s, t in zip(samples, tensors):
        assert s.act_hist == histogram(t, 30), s.layer
