"""nbdebug.overfit: fits 20 digits, diagnoses failures, and always gives the model back as it was."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from tests.test_sanity import assert_same, cnn, digits, one_thread, snapshot  # noqa: F401 (module fixture)


@pytest.fixture(scope="module")
def data():
    return digits(300)


def trained_optimizer(model: nn.Module, x, y) -> torch.optim.Optimizer:
    """An optimizer with real state (momentum buffers), as a user's would have mid-training."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
    return opt


def opt_state(opt):
    return [{k: v.clone() for k, v in s.items()} for s in opt.state.values()], [
        {k: v for k, v in g.items() if k != "params"} for g in opt.param_groups
    ]


def same_opt_state(opt, saved) -> bool:
    states, groups = saved
    now = list(opt.state.values())
    return (
        len(now) == len(states)
        and all(torch.equal(a[k], b[k]) for a, b in zip(now, states) for k in b)
        and [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == groups
    )


def test_healthy_cnn_fits_20_digits_and_comes_back_unchanged(data):
    x, y = data
    model = cnn()
    opt = trained_optimizer(model, x, y)
    snap, saved_opt = snapshot(model), opt_state(opt)
    result = nbdebug.overfit(model, (x, y), nn.CrossEntropyLoss(), n=20, optimizer=opt)
    assert result.passed and result.done and result.findings == []
    assert result.final_loss <= result.target == 0.05
    hist = result.history
    assert list(hist.epoch) == list(range(1, len(hist) + 1))
    assert hist.accuracy.iloc[-1] == 1.0 and hist.loss.iloc[0] > 1.5
    assert result.optimizer == "SGD(lr=0.05) - from your optimizer"
    assert result.turned_off == ["dropout (layer 7)", "weight_decay=0.0005"]
    assert_same(model, snap)
    assert same_opt_state(opt, saved_opt)


def test_subset_is_stratified_by_class(data):
    x, y = data
    seen = []
    nbdebug.overfit(
        cnn(), (x, y), nn.CrossEntropyLoss(), n=20, max_epochs=1,
        callback=lambda r: seen.append(r.n),
    )  # fmt: skip
    from nbdebug.sanity.subset import select

    sub = select((x, y), 20, True, torch.device("cpu")).target
    assert torch.bincount(sub, minlength=10).tolist() == [2] * 10
    plain = select((x, y), 20, False, torch.device("cpu")).target
    assert torch.equal(plain, y[:20])
    assert seen and seen[-1] == 20


def test_accepts_loader_dataset_and_dict_batches(data):
    x, y = data
    ds = torch.utils.data.TensorDataset(x, y)
    for d in (
        torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True),
        ds,
        [{"image": x[:64], "label": y[:64]}],
    ):
        assert nbdebug.overfit(cnn(), d, nn.CrossEntropyLoss(), n=20).passed


def test_cannot_overfit_with_a_tiny_learning_rate_says_flat(data):
    x, y = data
    result = nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), lr=1e-8, max_epochs=30)
    assert not result.passed
    (f,) = result.findings
    assert f.code == "cannot-overfit" and f.severity == "error"
    assert "flat" in f.evidence["causes"][0] and "learning rate is too low" in f.evidence["causes"][0]


def test_cannot_overfit_with_a_huge_learning_rate_says_too_high(data):
    x, y = data
    result = nbdebug.overfit(
        cnn(), (x, y), nn.CrossEntropyLoss(), optimizer=torch.optim.SGD, lr=5.0, max_epochs=60
    )
    assert not result.passed
    assert "too high" in result.findings[0].evidence["causes"][0]


def test_contradicting_labels_come_first(data):
    x, y = data
    x2, y2 = x[:20].clone(), y[:20].clone()
    x2[10:] = x2[:10]
    y2[10:] = (y2[:10] + 1) % 10
    result = nbdebug.overfit(cnn(), (x2, y2), nn.CrossEntropyLoss(), stratify=False, max_epochs=150)
    assert not result.passed
    assert "10 identical inputs" in result.findings[0].evidence["causes"][0]


def test_capacity_bottleneck_plateaus(data):
    x, y = data
    tiny = nn.Sequential(nn.Flatten(), nn.Linear(64, 1), nn.Linear(1, 10))
    result = nbdebug.overfit(tiny, (x, y), nn.CrossEntropyLoss(), lr=0.05, max_epochs=400)
    assert not result.passed
    assert "decreased" in result.findings[0].evidence["causes"][0]


def test_keep_leaves_the_trained_weights(data):
    x, y = data
    model = nn.Sequential(cnn(), nn.BatchNorm1d(10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = nbdebug.overfit(model, (x, y), nn.CrossEntropyLoss(), keep=True)
    assert result.passed and result.kept
    after = model.state_dict()
    assert not torch.equal(after["0.0.weight"], before["0.0.weight"])
    assert not torch.equal(after["1.running_mean"], before["1.running_mean"])
    assert F.cross_entropy(model.eval()(x[:300]), y[:300]).item() < 3


def test_stop_and_keyboard_interrupt_restore_everything(data):
    x, y = data
    model = cnn()
    opt = trained_optimizer(model, x, y)
    snap, saved_opt = snapshot(model), opt_state(opt)
    stopped = nbdebug.overfit(
        model, (x, y), nn.CrossEntropyLoss(), optimizer=opt, lr=1e-6, should_stop=lambda: True
    )
    assert stopped.stopped and stopped.epochs == 1 and stopped.done
    assert_same(model, snap)

    def interrupt(result):
        if result.epochs == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        nbdebug.overfit(model, (x, y), nn.CrossEntropyLoss(), optimizer=opt, lr=1e-6, callback=interrupt)
    assert_same(model, snap)
    assert same_opt_state(opt, saved_opt)


def test_an_exception_mid_training_restores_the_model(data):
    x, y = data
    model = cnn()
    snap = snapshot(model)
    calls = []

    def flaky(o, t):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk full")
        return F.cross_entropy(o, t)

    seen = []
    with pytest.raises(NbdebugError, match="disk full"):
        nbdebug.overfit(model, (x, y), flaky, callback=seen.append)
    assert_same(model, snap)
    assert seen[-1].done and "disk full" in seen[-1].error  # the panel is told, not left "running"
    assert "model restored" in seen[-1].verdict()


def test_regression_target_is_relative_to_the_first_loss():
    x = torch.randn(64, 3)
    y = (x @ torch.tensor([[1.0], [-2.0], [0.5]])) * 10
    result = nbdebug.overfit(
        nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)), (x, y), nn.MSELoss(), lr=0.03
    )
    assert math.isnan(result.history.accuracy.iloc[0])
    assert result.target == pytest.approx(0.05 * result.history.loss.iloc[0], rel=0.2)
    assert result.passed


def test_bad_input(data):
    x, y = data
    with pytest.raises(NbdebugError, match="only 12 examples, fewer than n=20"):
        nbdebug.overfit(cnn(), (x[:12], y[:12]), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="integer class indices"):
        nbdebug.overfit(cnn(), (x, y.float()), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="empty"):
        nbdebug.overfit(cnn(), [], nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="meta device"):
        nbdebug.overfit(nn.Linear(64, 10, device="meta"), (x.flatten(1), y), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="no autograd graph"):
        nbdebug.overfit(cnn(), (x, y), lambda o, t: F.cross_entropy(o.detach(), t))
    with pytest.raises(NbdebugError, match="not a scalar"):
        nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(NbdebugError, match=r"layer '0' \(Conv2d\)"):
        nbdebug.overfit(cnn(), (x.flatten(1), y), nn.CrossEntropyLoss())
    with pytest.raises(NbdebugError, match="optimizer must be"):
        nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), optimizer="adam")
    with pytest.raises(NbdebugError, match=r"x Tensor\(300, 1, 8, 8\).* and y Tensor\(299,\)"):
        nbdebug.overfit(cnn(), (x, y[:299]), nn.CrossEntropyLoss())


def test_repr_renders_without_a_kernel(data):
    x, y = data
    result = nbdebug.overfit(cnn(), (x, y), nn.CrossEntropyLoss(), lr=1e-8, max_epochs=5)
    bundle = result._repr_mimebundle_()
    assert "cannot overfit" in bundle["text/plain"] and "cannot-overfit" in bundle["text/plain"]
    assert (
        "data:image/png;base64" in bundle["text/html"] and 'data-code="cannot-overfit"' in bundle["text/html"]
    )


def test_lbfgs_gets_its_closure(data):
    x, y = data
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5)
    snap = snapshot(model)
    result = nbdebug.overfit(model, (x, y), nn.CrossEntropyLoss(), optimizer=opt, max_epochs=50)
    assert result.passed and result.optimizer.startswith("LBFGS(lr=0.5)")
    assert_same(model, snap)


# -- the subset is read as a real loop reads it: through __getitem__, every epoch ------------------------


class DigitsDataset(torch.utils.data.Dataset):
    """A map-style dataset as users write them; `relabel(i, reads, label)` may replace the label of an
    index on a read (the data-pipeline bug); `augment` adds noise to the input (normal). Every label
    it returns is recorded, so the test compares the finding with what __getitem__ really did."""

    def __init__(self, x, y, relabel=None, augment=False, target_mask=False):
        self.x, self.y = x, y
        self.relabel, self.augment, self.target_mask = relabel, augment, target_mask
        self.returned: dict[int, list[int]] = {}
        self.reads = 0

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        self.reads += 1
        x, label = self.x[i], int(self.y[i])
        if self.augment:
            x = x + 0.1 * torch.randn_like(x)
        if self.relabel is not None:
            label = self.relabel(i, self.reads, label)
        self.returned.setdefault(i, []).append(label)
        if self.target_mask:  # a dense target flipped with its input (segmentation): not a class label
            mask = (x > 0).float()
            return (x.flip(-1), mask.flip(-1)) if torch.rand(()) < 0.5 else (x, mask)
        return x, label


def test_random_label_in_getitem_is_named_with_the_indices_and_both_labels(data):
    """Issue 14 symptom 8: labels drawn anew on every read (a real pipeline bug) passed, because the 20
    examples were read once. Re-read every epoch, the labels move and the evidence says where."""
    x, y = data
    ds = DigitsDataset(x, y, relabel=lambda i, reads, label: int(torch.randint(0, 10, ())))
    result = nbdebug.overfit(cnn(), ds, nn.CrossEntropyLoss(), time_budget=20)
    assert not result.passed
    found = {f.code: f for f in result.findings}
    f = found["unstable-labels"]
    assert f.severity == "error" and "DigitsDataset.__getitem__" in f.message
    ev = f.evidence
    assert ev["changed"] >= 15 and ev["reads"] == result.epochs  # one read per epoch
    for i, first, later in zip(ev["indices"], ev["first"], ev["later"]):
        assert first != later and first in ds.returned[i] and later in ds.returned[i]
    assert "unstable-labels" in found["cannot-overfit"].evidence["causes"][0]
    assert result.epochs < 50  # the verdict is known after a few epochs of moving labels


def test_one_label_changed_once_is_enough_and_stable_labels_are_silent(data):
    x, y = data
    # index 9 gives another label once, at epoch 4 (reads 341-360: the first read takes all 300, then 20 an epoch)
    ds = DigitsDataset(
        x, y, relabel=lambda i, reads, label: (label + 1) % 10 if i == 9 and 340 < reads <= 360 else label
    )
    result = nbdebug.overfit(cnn(), ds, nn.CrossEntropyLoss())
    assert ds.returned[9] == [int(y[9])] * 3 + [(int(y[9]) + 1) % 10] + [int(y[9])] * (result.epochs - 4)
    (f,) = [f for f in result.findings if f.code == "unstable-labels"]
    assert f.evidence["indices"] == [9] and f.evidence["first"] == [int(y[9])]
    assert f.evidence["later"] == [(int(y[9]) + 1) % 10]
    stable = DigitsDataset(x, y)
    result = nbdebug.overfit(cnn(), stable, nn.CrossEntropyLoss())
    assert result.passed and result.findings == []
    assert result.epochs > 1 and stable.reads == len(x) + 20 * (result.epochs - 1)  # really re-read


def test_augmented_inputs_are_normal_and_the_loader_is_read_through_its_dataset(data):
    x, y = data
    ds = DigitsDataset(x, y, augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
    model = cnn()
    rng = torch.get_rng_state()
    result = nbdebug.overfit(model, loader, nn.CrossEntropyLoss())
    assert torch.equal(torch.get_rng_state(), rng)  # the sampler and the noise drew from a restored RNG
    assert result.passed and [f.code for f in result.findings] == []
    bugged = torch.utils.data.DataLoader(
        DigitsDataset(x, y, relabel=lambda i, reads, label: int(torch.randint(0, 10, ()))),
        sampler=torch.utils.data.WeightedRandomSampler(torch.ones(len(x)), num_samples=len(x)),
        batch_size=32,
    )
    result = nbdebug.overfit(cnn(), bugged, nn.CrossEntropyLoss(), time_budget=20)
    assert "unstable-labels" in {f.code for f in result.findings}


def test_dense_targets_that_move_with_the_input_are_not_labels(data):
    x, y = data
    ds = DigitsDataset(x, y, target_mask=True)
    result = nbdebug.overfit(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)),
        ds,
        nn.BCEWithLogitsLoss(),
        max_epochs=30,
    )
    assert "unstable-labels" not in {f.code for f in result.findings}
