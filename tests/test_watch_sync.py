"""No hidden GPU synchronization (issue 17 item 4): on the steps it does not sample, `watch` keeps the loss
and the gradient norms on the device and reads them in batches (nbdebug/monitor/pending.py).

On a CPU there is no device to wait for, so the tests count what would be a synchronization on a GPU: every
`Tensor.item` / `__float__` / `__bool__` / `__int__` / `tolist` that nbdebug's own code makes (the optimizer's
and the DataLoader's own reads are theirs, and are left out by looking for an nbdebug frame on the stack)."""

from __future__ import annotations

import contextlib
import math
import time
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from bench._common import ReadCounter
from nbdebug.monitor.activations import RETIRE_AFTER
from tests.watch_loops import codes, digits, mlp, single_thread  # noqa: F401  (autouse fixture)


def _batches(n_steps: int, bs: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    x, y = digits()
    return [
        (x[(i * bs) % 1500 : (i * bs) % 1500 + bs], y[(i * bs) % 1500 : (i * bs) % 1500 + bs])
        for i in range(n_steps)
    ]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_at_most_one_read_per_ten_unsampled_steps(optimizer):
    """200 steps, every=1000: after the first 5 (sampled) steps, 195 steps that nbdebug does not sample.
    Before issue 17 each of them read the loss and the gradient norm (2 reads per step, 390)."""
    torch.manual_seed(0)
    model = mlp()
    opt = (
        torch.optim.Adam(model.parameters(), lr=1e-3)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    )
    batches = _batches(200)
    with ReadCounter() as counter, nbdebug.watch(model, opt, every=1000) as w:
        for i, (xb, yb) in enumerate(batches):
            counter.on = i >= 5
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        counter.on = False
    unsampled = w.steps - 5
    assert unsampled == 195
    assert len(counter.reads) <= unsampled // 10, counter.reads[:10]
    # and nothing is lost: every step's loss was read in the end, equal to what the loop computed
    assert w.history["loss"].notna().all() and len(w.history) == 200


def test_values_read_in_batches_are_the_steps_own():
    """The loss and gradient norm of each unsampled step, read later in one batch, are that step's."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses, norms = [], []
    with nbdebug.watch(model, opt, every=50) as w:
        for xb, yb in _batches(40):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            losses.append(float(loss.detach()))
            norms.append(
                float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
            )
            opt.step()
    h = w.history
    assert h["loss"].tolist() == pytest.approx(losses, rel=1e-6)
    assert h["grad_norm"].tolist() == pytest.approx(norms, rel=1e-5)


@pytest.mark.parametrize("what", ["input", "log0", "nan-update"])
def test_a_nan_on_an_unsampled_step_is_found_at_its_step(what):
    """Step 37 of a run sampled every 1000 steps: the loss is not finite there. It is read later, in a
    batch, and the finding still names step 37. A corrupt batch is named as the input (its reference was
    kept); a log(0) term with no parameter in it leaves the weights finite, and the replay on step 37's
    input names the loss computation; a NaN that the update wrote into the weights cannot be replayed
    later, and the finding says so and how to name the layer (every=1)."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nbdebug.watch(model, opt, every=1000) as w:
        for i, (xb, yb) in enumerate(_batches(60)):
            if what == "input" and i == 36:
                xb = xb.clone()
                xb[0, 0] = math.nan
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            if i == 36 and what == "log0":
                loss = loss + torch.log(torch.zeros(()))  # -inf, no parameter in it
            if i == 36 and what == "nan-update":
                loss = loss * torch.tensor(math.nan)  # NaN gradients: SGD writes NaN into every weight
            loss.backward()
            opt.step()
    f = next(f for f in w.findings if f.code == "nonfinite")
    assert f.evidence["step"] == 37
    if what == "input":
        assert f.where == "input" and "input batch itself" in f.message
    elif what == "log0":
        assert f.where == "loss function" and "-inf" in f.message
    else:
        assert f.evidence["phase"] == "late" and "every=1" in f.hint


def test_a_nonfinite_loss_whose_input_was_let_go_is_not_blamed_on_the_loss(monkeypatch):
    """A non-finite loss read after its step's input was let go (KEEP_INPUT_BYTES) cannot be replayed: the
    finding says so and what to check, instead of "every layer's output was finite" from a replay that never
    ran."""
    from nbdebug.monitor import pending

    monkeypatch.setattr(pending, "KEEP_INPUT_BYTES", 1)  # only the latest unread step keeps its input
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nbdebug.watch(model, opt, every=1000) as w:
        for i, (xb, yb) in enumerate(_batches(60)):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            if i == 36:
                loss = loss + torch.log(torch.zeros(()))  # -inf, no parameter in it: the weights stay finite
            loss.backward()
            opt.step()
    f = next(f for f in w.findings if f.code == "nonfinite")
    assert f.evidence == {"step": 37, "phase": "unreplayed"} and f.where is None
    assert "could not be replayed" in f.message and "every layer" not in f.message


def test_watch_gan_reads_each_step():
    """watch_gan builds its rows from each step's numbers: its monitors read every step (documented)."""
    g, d = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), nn.Sequential(nn.Linear(2, 1))
    opt_g, opt_d = torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)
    with nbdebug.watch_gan(d, g, opt_d, opt_g, every=1000) as w:
        for _ in range(12):
            fake = g(torch.randn(16, 4))
            opt_d.zero_grad()
            ld = F.binary_cross_entropy_with_logits(d(torch.randn(16, 2)), torch.ones(16, 1))
            ld = ld + F.binary_cross_entropy_with_logits(d(fake.detach()), torch.zeros(16, 1))
            ld.backward()
            opt_d.step()
            opt_g.zero_grad()
            F.binary_cross_entropy_with_logits(d(fake), torch.ones(16, 1)).backward()
            opt_g.step()
    assert w.history["g_loss"].notna().all() and w.history["d_loss"].notna().all()


@pytest.mark.parametrize("path", ["per-tensor", "batched-cpu", "segmented"])
def test_histograms_equal_torch_histc(path):
    """The layer histograms are torch.histc's over the finite values of a tensor's (strided) subsample,
    with the same (low, high): constant, tiny, empty and non-finite tensors too. On an accelerator they
    are computed together (segmented: one pass, one read), on the CPU as the rows of one matrix (batched:
    short rows padded with their first value, which is taken back out of its bin)."""
    from nbdebug.monitor.summaries import (
        HIST_SAMPLE,
        batched_histograms,
        histogram,
        segmented_histograms,
        subsample,
    )

    def histc(t: torch.Tensor, bins: int) -> tuple[float, float, list[int]]:
        f = subsample(t, HIST_SAMPLE)
        f = f[torch.isfinite(f)]
        if f.numel() == 0:
            return 0.0, 0.0, [0] * bins
        lo, hi = (float(v) for v in torch.aminmax(f))
        hi = hi if hi > lo else lo + 1e-12
        return lo, hi, [int(c) for c in torch.histc(f, bins=bins, min=lo, max=hi).tolist()]

    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(5000, generator=g),
        torch.rand(37, generator=g) * 3 - 1,
        torch.zeros(10),
        torch.tensor([math.nan, 1.0, 2.0, math.inf, -math.inf]),
        torch.tensor([math.nan]),
        torch.randn(64, 256, generator=g) * 1e-4 + 5,
        torch.tensor([2.0, 1.0, 3.0, 3.0]),  # padded with 2.0: a middle bin, not the first
        torch.empty(0),
        torch.randn(3, 50, generator=g).exp(),
    ]
    for bins in (7, 30):
        if path == "segmented":
            got = segmented_histograms([subsample(t, HIST_SAMPLE) for t in tensors], bins)
        elif path == "batched-cpu":
            got = batched_histograms(tensors, bins)
        else:
            got = [histogram(t, bins) for t in tensors]
        for (lo, hi, counts), t in zip(got, tensors):
            want = histc(t, bins)
            assert (lo, hi) == pytest.approx(want[:2], rel=1e-6, abs=1e-12)
            assert counts == want[2]


def test_the_activation_function_search_retires_on_a_model_that_calls_none():
    """The torch-function mode that finds `torch.relu(x)` in a forward costs about a forward; a model whose
    activations are all modules (nn.ReLU) is searched on its first RETIRE_AFTER sampled forwards, then no longer.
    A model that calls torch.relu keeps it (its relu rows are still there on later samples)."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(torch.relu(self.fc1(x)))

    for model, searched in ((mlp(), False), (Functional(), True)):
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with nbdebug.watch(model, opt, every=5) as w:
            for xb, yb in _batches(30):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
        probe = w.monitor.probe
        assert probe.found_functions is searched
        assert probe.watched_forwards == (len(w.monitor.samples) if searched else RETIRE_AFTER)
        if searched:
            assert "relu(fc1)" in set(w.layer_stats().query("step == 30")["layer"])


def test_unread_steps_keep_their_inputs_within_a_budget(monkeypatch):
    """The inputs of unread steps are kept (references) for the NaN replay, up to KEEP_INPUT_BYTES: beyond
    it the oldest are let go, the latest always stays; a read lets every one go."""
    from nbdebug.monitor import pending
    from nbdebug.monitor.records import StepRecord

    monkeypatch.setattr(pending, "KEEP_INPUT_BYTES", 3 * 400)  # three batches of 100 float32
    q = pending.PendingReads()
    entries = [
        pending.Unread(
            StepRecord(step=i),
            torch.tensor(1.0),
            torch.tensor(2.0),
            None,
            [],
            ((torch.ones(100),), {}),
            late=True,
        )
        for i in range(1, 6)
    ]
    for u in entries:
        q.add(u)
    assert [u.inputs is not None for u in entries] == [False, False, True, True, True]
    assert q.input_bytes <= 3 * 400
    q.read(0)
    assert q.queue == [] and q.input_bytes == 0 and [u.rec.loss for u in entries] == [1.0] * 5


@pytest.mark.parametrize("zeroing", ["set_to_none=False", "grad.zero_()", "forgotten", "halved"])
def test_in_place_zeroing_is_checked_without_a_read(zeroing):
    """`zero_grad(set_to_none=False)` (the default before PyTorch 2.0) and d2l's `w.grad.zero_()` keep the
    same .grad tensor: whether it was zeroed is a device tensor, read with the step's numbers, not a read
    per parameter per backward. A missing zero_grad is still named from its step, and so is a gradient
    rescaled in place instead of zeroed (its flag is read later, with the step's loss)."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    batches = _batches(120)
    with ReadCounter() as counter, nbdebug.watch(model, opt, every=1000) as w:
        for i, (xb, yb) in enumerate(batches):
            counter.on = i >= 5
            if zeroing == "set_to_none=False":
                opt.zero_grad(set_to_none=False)
            elif zeroing in ("grad.zero_()", "halved") and i > 0:
                for p in model.parameters():
                    p.grad.zero_() if zeroing == "grad.zero_()" else p.grad.mul_(0.5)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        counter.on = False
    assert len(counter.reads) <= (w.steps - 5) // 10, counter.reads[:10]
    assert ("grad-not-zeroed" in codes(w)) is (zeroing in ("forgotten", "halved"))
    if zeroing != "set_to_none=False" and zeroing != "grad.zero_()":
        leak = next(f for f in w.findings if f.code == "grad-not-zeroed")
        assert w.history["leaked"].iloc[1:].gt(0).all() and "from step 2" in leak.message


@pytest.mark.parametrize("shape", [(8,), (8, 5), (8, 5, 7), (8, 7, 5), (4, 3, 6, 6)])
def test_a_relus_unit_maxima_give_its_dead_units_and_its_non_finite_values(shape):
    """One pass over a ReLU's output: the dead fraction is unit_dead_fraction's (the smaller reading of a 3-D
    output too), and the sum of the maxima is non-finite exactly when a value is NaN or +Inf."""
    from nbdebug.monitor.summaries import unit_dead_fraction, unit_maxima

    g = torch.Generator().manual_seed(0)
    y = torch.relu(torch.randn(*shape, generator=g) - 0.8)
    if len(shape) > 1:
        y[:, 1] = 0  # a dead unit
    dead, probe = unit_maxima(y)
    assert float(dead) == float(unit_dead_fraction(y)) and math.isfinite(float(probe))
    for bad in (math.nan, math.inf):
        z = y.clone()
        z.view(-1)[-1] = bad
        assert not math.isfinite(float(unit_maxima(z)[1]))


@pytest.mark.parametrize(
    "case",
    [
        "linear",
        "relu",
        "offset",
        "non-contiguous",
        "bfloat16",
        "tanh",
        "one value",
        "nan",
        "hist",
        "hist relu",
    ],
)
def test_layer_numbers_equal_torchs_own_on_the_subsample(case):
    """`summarize` reduces a strided view of the output (no copy) and reads its spread as two sums: the
    mean, std, zero and saturated fractions it reports are torch's own on that subsample (std to float32
    rounding, also when the mean is 1e4 times the spread)."""
    from nbdebug.monitor.activations import SATURATION_LIMITS, read_samples, summarize
    from nbdebug.monitor.summaries import strided

    g = torch.Generator().manual_seed(0)
    kind = {"relu": "relu", "tanh": "tanh", "hist relu": "relu"}.get(case, "")
    y = {
        "linear": lambda: torch.randn(64, 300, generator=g),
        "relu": lambda: torch.relu(torch.randn(64, 16, 28, 28, generator=g)),
        "offset": lambda: torch.randn(64, 16, 28, 28, generator=g) * 1e-3 + 10.0,
        "non-contiguous": lambda: torch.randn(300, 64, generator=g).t(),
        "bfloat16": lambda: torch.randn(32, 64, 40, generator=g).bfloat16(),
        "tanh": lambda: torch.tanh(3 * torch.randn(64, 512, generator=g)),
        "one value": lambda: torch.tensor([2.5]),
        "nan": lambda: torch.randn(64, 300, generator=g).index_fill_(1, torch.tensor([7]), math.nan),
        "hist": lambda: torch.randn(64, 16, 28, 28, generator=g) * 0.5 + 1.0,
        "hist relu": lambda: torch.relu(torch.randn(64, 16, 28, 28, generator=g)),
    }[case]()
    queue: list = []
    hist = case.startswith("hist")
    s = summarize(1, "layer", kind, y, None, hist, queue)
    kept = read_samples(queue, {id(s)})
    if not hist:
        assert kept == []  # no histogram values without histograms
        sub = strided(y).double()
        assert y.flatten().numel() >= sub.numel() >= min(y.numel(), 16384)
    else:  # a layer that is no activation shows the numbers of its histogram's 4096 values; a ReLU its 16k
        assert [k[0] for k in kept] == [s] and torch.equal(kept[0][1], strided(y, 4096))
        sub = (strided(y) if kind else kept[0][1]).double()
    if case == "nan":
        assert s.act_nonfinite and math.isnan(s.act_std)
        return
    assert not s.act_nonfinite
    assert s.act_mean == pytest.approx(float(sub.mean()), rel=1e-5, abs=1e-6)
    assert s.act_mean == pytest.approx(float(y.double().mean()), rel=0.02, abs=0.02)  # estimates the whole
    std = float(sub.std()) if sub.numel() > 1 else 0.0
    assert s.act_std == pytest.approx(std, rel=1e-4 if case != "bfloat16" else 1e-3, abs=1e-12)
    if kind == "relu":
        assert s.act_zero_frac == pytest.approx(float((sub == 0).double().mean()), abs=1e-12)
    if kind == "tanh":
        edge = math.tanh(SATURATION_LIMITS["tanh"])
        assert s.saturated_frac == pytest.approx(float((sub.abs() >= edge).double().mean()), abs=1e-6)


def test_layers_read_together_from_their_histogram_copies_get_each_their_own_numbers():
    """On a histogram step the layers that are no activation take their numbers from their histogram copy,
    all read in one call (`read_samples`): each gets torch's mean and std of its own values (also a layer 1e4
    from zero, a short one, a one-value one), a NaN stays in its own layer, and a ReLU read in the same call
    keeps its own numbers. (Reducing those layers together, one matrix per length of copy, was tried and
    left: its temporaries cost more than the four small dispatches a layer it saved.)"""
    from nbdebug.monitor.activations import read_samples, summarize
    from nbdebug.monitor.summaries import strided

    g = torch.Generator().manual_seed(0)
    ys = [
        torch.randn(64, 16, 28, 28, generator=g) * 0.5 + 1.0,
        torch.randn(64, 300, generator=g) * 1e-3 + 1e4,
        torch.randn(7, 30, generator=g),
        torch.tensor([2.5]),
        torch.randn(64, 300, generator=g).index_fill_(1, torch.tensor([8]), math.nan),  # (in the subsample)
        torch.randn(5, 6, generator=g).t(),
    ]
    queue: list = []
    samples = [summarize(1, f"l{i}", "", y, None, True, queue) for i, y in enumerate(ys)]
    relu = summarize(1, "relu", "relu", torch.relu(torch.randn(64, 300, generator=g)), None, True, queue)
    kept = {id(s): v for s, v in read_samples(queue, {id(s) for s in [*samples, relu]})}
    for s, y in zip(samples, ys):
        sub = kept[id(s)].double()
        assert torch.allclose(sub, strided(y, 4096).double(), equal_nan=True)
        if torch.isnan(y).any():
            assert s.act_nonfinite
            continue
        assert not s.act_nonfinite and s.act_mean == pytest.approx(float(sub.mean()), rel=1e-5, abs=1e-6)
        std = float(sub.std()) if sub.numel() > 1 else 0.0
        assert s.act_std == pytest.approx(std, rel=1e-4, abs=1e-12), s.layer
    assert not relu.act_nonfinite and relu.dead_frac == 0.0 and 0.4 < relu.act_zero_frac < 0.6


@pytest.mark.parametrize("end", ["success", "exception"])
def test_leaves_are_hooked_only_on_sampled_steps(end):
    """A module with a forward hook takes PyTorch's slow call path on every forward: the leaves carry the
    monitor's hook only during sampled steps (every leaf on the first and every `every`-th, the activation
    modules alone on steps 2-5, which serve the diagnosis), the user's own hooks stay where they are
    throughout, and none of the monitor's is left after the watch, however it ended."""
    torch.manual_seed(0)
    model = mlp()
    user = model[0].register_forward_hook(lambda m, a, out: None)
    leaves = [m for m in model.modules() if not list(m.children())]
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    hooked: dict[int, list[int]] = {}

    def count(m, a, out):  # a hook on the root: runs after the leaves' forwards of the same call
        hooked[len(hooked) + 1] = [len(leaf._forward_hooks) for leaf in leaves]

    probe = model.register_forward_hook(count)
    with pytest.raises(RuntimeError, match="stop here") if end == "exception" else contextlib.nullcontext():
        with nbdebug.watch(model, opt, every=10) as w:
            for i, (xb, yb) in enumerate(_batches(25)):
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                if end == "exception" and i == 21:
                    raise RuntimeError("stop here")
    probe.remove()
    own = [1 if leaf is model[0] else 0 for leaf in leaves]
    relus = [int(isinstance(leaf, nn.ReLU)) for leaf in leaves]
    for step, counts in hooked.items():
        extra = [c - o for c, o in zip(counts, own)]
        want = [1] * len(leaves) if step == 1 or step % 10 == 0 else relus if step <= 5 else [0] * len(leaves)
        assert extra == want, (step, counts)
    assert [len(leaf._forward_hooks) for leaf in leaves] == own and user.id in model[0]._forward_hooks
    assert len(hooked) == 22 if end == "exception" else 25
    assert w.layer_stats().empty is False and set(w.layer_stats()["step"]) == {1, 2, 3, 4, 5, 10, 20}


@pytest.mark.parametrize("activation", ["module", "function"])
def test_early_samples_take_what_the_diagnosis_reads(activation):
    """Steps 2-5 are sampled for the diagnosis of a short run: the activations' numbers (dead and saturated
    units) and every layer's weight, update and gradient norms; the other layers' activation numbers come
    with the histograms, on the first and every `every`-th step. A ReLU called as a function keeps its name
    (`relu(fc1)`, from the layer before it) on every sampled step."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.act, self.fc2 = nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)

        def forward(self, x):
            h = self.fc1(x)
            return self.fc2(self.act(h) if activation == "module" else torch.relu(h))

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nbdebug.watch(model, opt, every=10) as w:
        for xb, yb in _batches(12):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    stats = w.layer_stats()
    relu = stats[stats.layer == ("act" if activation == "module" else "relu(fc1)")].set_index("step")
    assert list(relu.index) == [1, 2, 3, 4, 5, 10] and relu["dead_frac"].notna().all()
    assert relu["act_std"].gt(0).all()
    for layer in ("fc1", "fc2"):
        rows = stats[stats.layer == layer].set_index("step")
        assert list(rows.index) == [1, 2, 3, 4, 5, 10]
        assert rows["update_ratio"].gt(0).all() and rows["grad_norm"].gt(0).all()
        assert rows.loc[[1, 10], "act_std"].gt(0).all() and rows.loc[[2, 3, 4, 5], "act_std"].isna().all()
    assert [s for s, *_ in w.histograms("fc1")] == [1, 10]


def test_zero_grad_frees_the_last_steps_gradients_under_watch():
    """The monitor tells a zeroed gradient from a carried one by the tensor's identity, without holding it:
    after `zero_grad()` the last step's gradient tensors are freed as in the bare loop (a strong reference
    kept one more set of gradients in memory through each forward and backward); a missing zero_grad is
    still named."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    freed = []
    with nbdebug.watch(model, opt, every=1000) as w:
        for xb, yb in _batches(12):
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            last = [weakref.ref(p.grad) for p in model.parameters()]
            opt.zero_grad()
            freed.append(all(r() is None for r in last))
    assert all(freed) and "grad-not-zeroed" not in codes(w)
    with nbdebug.watch(model, opt, every=1000) as w:
        for xb, yb in _batches(12):
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    assert "grad-not-zeroed" in codes(w)


def test_own_time_counts_nbdebugs_calls_once_and_puts_everything_back():
    """bench/_common.py OwnTime (the integrations benchmark's noise-free overhead figure): it times the hooks
    nbdebug registers and its interceptions, not the user's own hooks (a sleeping one is not in it), and
    leaves the patched registration functions as they were."""
    from bench._common import OwnTime

    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    before = (nn.Module.register_forward_hook, torch.optim.Optimizer.register_step_pre_hook)
    user_calls = []
    slow = 0.02

    def user_hook(module, args, out):  # the user's: not nbdebug's time
        time.sleep(slow)
        user_calls.append(1)

    batches = _batches(12)
    with OwnTime() as timer:
        handle = model.register_forward_hook(user_hook)
        start = time.perf_counter()
        with nbdebug.watch(model, opt):
            for x, y in batches:
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        wall = time.perf_counter() - start
        handle.remove()
    assert (nn.Module.register_forward_hook, torch.optim.Optimizer.register_step_pre_hook) == before
    assert len(user_calls) == len(batches)
    assert 0 < timer.seconds < wall - slow * len(batches)
