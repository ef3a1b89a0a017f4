"""Activation memory of a training step: per-layer bytes against what PyTorch saves, forecast, restore."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.hooks import hook_counts
from nbdebug.memory.live import MemoryWatch, watch
from nbdebug.memory.step import LiveBytes, _run_step, step


def conv_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )  # fmt: skip


def batch(n: int = 32):
    return torch.randn(n, 1, 8, 8), torch.randint(0, 10, (n,))


def test_per_layer_saved_bytes_match_what_autograd_saves():
    model, (x, y) = conv_net(), batch(32)
    result = step(model, (x, y), nn.CrossEntropyLoss())
    rows = result.to_frame().set_index("name")
    f32 = 4
    # ReLU saves its output; MaxPool2d saves int64 indices (its input is the ReLU output, already counted)
    assert rows.loc["2", "saved_bytes"] == 32 * 8 * 8 * 8 * f32
    assert rows.loc["3", "saved_bytes"] == 32 * 8 * 4 * 4 * 8
    assert rows.loc["5", "saved_bytes"] == 32 * 16 * 4 * 4 * f32
    # the first conv saves the batch and its weight: neither is activation memory
    assert rows.loc["0", "saved_bytes"] == 0 and rows.loc["0", "saved_tensors"] == 2
    # Linear saves Flatten's output, a view of ReLU's output: not counted twice
    assert rows.loc["7", "saved_bytes"] == 0
    assert rows.loc["0", "output_bytes"] == 32 * 8 * 8 * 8 * f32
    assert result.saved_bytes == rows["saved_bytes"].sum()
    assert result.peak_bytes >= result.saved_bytes and result.peak_at == "backward"
    text = result._repr_mimebundle_()
    assert "saved for backward" in text["text/plain"] and "data:image/png" in text["text/html"]


def test_the_tracker_sees_what_autograd_frees():
    x = torch.randn(64, 256, requires_grad=True)
    buffer = torch.zeros(256)
    tracker = LiveBytes()
    with tracker:
        flat, _ = x.view(-1), buffer.add_(1)  # a view and an in-place op allocate nothing
        assert tracker.current == 0 and tracker.peak == 0
        del flat
        h = (x * 2).relu()
        after_forward = tracker.current
        h.sum().backward()
        del h
    # x*2 saves nothing (its gradient is 2*grad) and dies once relu ran; relu keeps its output for backward
    assert after_forward == 64 * 256 * 4
    assert tracker.current == 64 * 256 * 4  # only x.grad survives the step
    assert tracker.peak >= after_forward


def test_meta_run_measures_the_same_bytes_as_cpu():
    model, b = conv_net(), batch(16)
    for n in (4, 16):
        cpu = _run_step(model, b, nn.CrossEntropyLoss(), n, "cpu", layers=False)[0].peak
        model.zero_grad(set_to_none=True)
        meta = _run_step(model, b, nn.CrossEntropyLoss(), n, "meta", layers=False)[0].peak
        assert cpu == meta


def test_forecast_from_two_small_batches_matches_the_measured_peak():
    model, b = conv_net(), batch(64)
    result = step(model, b, nn.CrossEntropyLoss(), budget="64MiB")
    f = result.forecast
    assert f.sizes == (16, 32) and f.method == "meta"
    assert abs(result.forecast_error) < 0.05  # out of sample: fit at 16 and 32, checked at 64
    assert f.batch_bytes_per_example == (1 * 8 * 8 * 4 + 8)
    # a batch sliced from a bigger tensor counts its own rows, not the storage it shares
    sliced = step(
        model, (torch.randn(1000, 1, 8, 8)[:64], torch.randint(0, 10, (1000,))[:64]), nn.CrossEntropyLoss()
    )
    assert sliced.forecast.batch_bytes_per_example == (1 * 8 * 8 * 4 + 8)
    n = result.max_batch
    assert result.verified is not None and result.verified[0] == n and result.verified[1] <= 64 * 2**20
    # one more example would not fit
    assert f.bytes_at(n + 1) > 64 * 2**20 or result.verified[1] + f.per_example > 64 * 2**20
    assert "peak(N) ~" in f.formula() and "x N" in f.formula()


def test_adam_state_is_forecast_before_its_first_step():
    model = nn.Linear(100, 10)
    opt = torch.optim.Adam(model.parameters())
    result = step(
        model, (torch.randn(8, 100), torch.randint(0, 10, (8,))), nn.CrossEntropyLoss(), optimizer=opt
    )
    params = sum(p.numel() * 4 for p in model.parameters())
    assert result.optimizer_bytes == 2 * params and "expected after its first step" in result.optimizer_note
    assert result.forecast.fixed == 3 * params
    assert opt.state == {}  # the optimizer was never stepped


def _snapshot(model):
    return (
        {k: v.clone() for k, v in model.state_dict().items()},
        {n: (None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()},
        [m.training for m in model.modules()],
        hook_counts(model),
        torch.get_rng_state(),
    )


def _same(a, b):
    sa, ga, ma, ha, ra = a
    sb, gb, mb, hb, rb = b
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all((ga[k] is None and gb[k] is None) or torch.equal(ga[k], gb[k]) for k in ga)
    assert ma == mb and ha == hb and torch.equal(ra, rb)


@pytest.mark.parametrize("failure", [None, RuntimeError, KeyboardInterrupt])
def test_model_comes_back_unchanged(failure):
    model = conv_net()
    x, y = batch(8)
    nn.CrossEntropyLoss()(model(x), y).backward()  # existing gradients must survive
    grads_before = [p.grad for p in model.parameters()]
    model.eval()
    model[1].train()
    before = _snapshot(model)

    def loss_fn(out, target):
        if failure is not None:
            raise failure("boom")
        return nn.functional.cross_entropy(out, target)

    if failure is None:
        step(model, (x, y), loss_fn)
    else:
        with pytest.raises(failure):
            step(model, (x, y), loss_fn)
    _same(before, _snapshot(model))
    assert all(a is b for a, b in zip(grads_before, [p.grad for p in model.parameters()]))


def test_bad_input_names_the_culprit():
    model, b = conv_net(), batch(4)
    with pytest.raises(NbdebugError, match=r"scalar tensor.*Tensor\(4, 10\)"):
        step(model, b, lambda out, y: out)
    with pytest.raises(NbdebugError, match="model must be an nn.Module, got Tensor"):
        step(torch.ones(1), b, nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="two different positive batch sizes"):
        step(model, b, nn.CrossEntropyLoss(), sizes=(2, 2))
    with pytest.raises(NbdebugError, match="forecast_on"):
        step(model, b, nn.CrossEntropyLoss(), forecast_on="gpu")


def test_meta_fallback_when_an_op_has_no_meta_kernel():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            keep = x[x[:, 0] > -100]  # boolean mask: data-dependent shape, not on meta
            return self.fc(keep)

    result = step(Picky(), (torch.randn(8, 4), torch.randint(0, 2, (8,))), nn.CrossEntropyLoss())
    assert result.forecast.method == "cpu"
    assert any("meta run failed" in n for n in result.notes)


def test_out_of_memory_on_the_device_falls_back_to_meta():
    """The GPU path where the batch does not fit (bench/gpu_check.py runs it for real): simulated here."""

    class TooBig(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            if x.device.type != "meta":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return self.fc(x).relu()

    model = TooBig()
    result = step(
        model, (torch.randn(64, 4), torch.randint(0, 2, (64,))), nn.CrossEntropyLoss(), budget="1MiB"
    )
    assert result.device == "meta" and any("ran out of memory" in n for n in result.notes)
    assert result.to_frame().set_index("name").loc["fc", "output_bytes"] == 64 * 2 * 4
    assert result.max_batch > 0 and all(p.grad is None for p in model.parameters())


def test_memory_step_is_reachable_from_the_public_name():
    assert nbdebug.memory.step is step


def test_watch_samples_in_the_background_and_stops_itself():
    w = watch(interval=0.01, seconds=0.3)
    assert w.running
    blob = torch.zeros(20_000_000)  # ~76 MiB while the watch runs
    time.sleep(0.05)
    del blob
    deadline = time.monotonic() + 5
    while w.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not w.running and len(w.samples) >= 5
    frame = w.to_frame()
    assert (frame["allocated"] > 0).all() and frame["t"].is_monotonic_increasing
    assert "CPU" in w.source


def test_watch_stop_and_bad_arguments():
    w = MemoryWatch(interval=0.01, seconds=60).start()
    w.stop()
    assert not w.running
    with pytest.raises(NbdebugError, match="must be positive"):
        MemoryWatch(interval=0)
    if not torch.cuda.is_available():
        with pytest.raises(NbdebugError, match="cannot watch cuda"):
            MemoryWatch(device="cuda")
