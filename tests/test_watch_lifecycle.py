"""Findings have a lifecycle (issue 14 item 3, issue 19 class 1) and nbdebug is never silent (issue 14
item 4): a state that later evidence contradicts is withdrawn and shown as such, an event stays, an
exception inside a check or hook becomes one `internal-error` finding, and degenerate loops (nothing
trainable, empty parameter groups, an optimizer that never steps, no backward, a schedule that drives the
learning rate to nothing) get a clear finding while the deliberate variants stay silent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
import nbdebug.monitor.checks as checks_module
from nbdebug._core.catalogue import CATALOGUE, nature
from nbdebug.monitor.live import internal_error_finding
from tests.watch_loops import (
    codes,
    digits,
    loader,
    mlp,
    serious,
    single_thread,  # noqa: F401  (autouse fixture)
    train,
)


def _plateau_then_fall(epochs: int = 6):
    """A sigmoid MLP (SGD 0.02, momentum 0.9, batch 4): the loss sits at ln 10 for its first ~200 steps,
    then falls to ~0.46 (measured) - the healthy run issue 19 saw end with `loss-not-decreasing`."""
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    dl = loader(x[:600], y[:600], 4)
    with nbdebug.watch(model, opt) as w:
        for _ in range(epochs):
            for xb, yb in dl:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
    return w


def test_a_plateau_finding_is_withdrawn_when_the_loss_falls():
    """loss-not-decreasing raised during the early plateau is withdrawn once the loss falls: not in
    `findings`, shown as withdrawn in the text and the HTML, and kept in the history with its steps."""
    w = _plateau_then_fall()
    assert w.epochs["loss"].iloc[-1] < 0.3 * w.epochs["loss"].iloc[0]  # the run is healthy
    assert serious(w) == []
    events = [(e.action, e.finding.code) for e in w.finding_history]
    assert ("raised", "loss-not-decreasing") in events and ("withdrawn", "loss-not-decreasing") in events
    raised = next(e for e in w.finding_history if e.finding.code == "loss-not-decreasing")
    gone = next(e for e in w.withdrawn if e.finding.code == "loss-not-decreasing")
    assert raised.step < gone.step <= w.steps and gone.reason
    text = w.to_text()
    assert "Withdrawn" in text and "loss-not-decreasing" in text and gone.reason in text
    assert 'class="nbdebug-finding nbdebug-withdrawn" data-code="loss-not-decreasing"' in w.to_html()


def test_every_code_has_a_nature_and_events_are_the_things_that_happened():
    assert {info.nature for info in CATALOGUE.values()} == {"event", "state"}
    for code in ("nonfinite", "grad-not-zeroed", "eval-mode", "internal-error", "initial-loss"):
        assert nature(code) == "event"
    for code in (
        "loss-not-decreasing",
        "lr-too-high",
        "loss-oscillating",
        "dead-relu",
        "optimizer-never-steps",
    ):
        assert nature(code) == "state"


def test_events_are_not_withdrawn_by_later_good_news():
    """An epoch trained in eval mode, then model.train(): the eval-mode steps happened; the finding stays."""
    x, y = digits()
    model = nn.Sequential(nn.Linear(64, 32), nn.Dropout(0.3), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dl = loader(x[:320], y[:320])
    with nbdebug.watch(model, opt) as w:
        for epoch in range(4):
            model.train(epoch > 0)
            for xb, yb in dl:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
    assert "eval-mode" in codes(w) and w.found_at("eval-mode") == 1 and w.withdrawn == []


# -- never silent ----------------------------------------------------------------------------------------


def test_a_check_that_raises_is_one_info_finding_and_the_other_checks_still_run(monkeypatch):
    def broken(run):
        raise ValueError("rule exploded")
        yield  # pragma: no cover

    monkeypatch.setattr(checks_module, "CHECKS", (broken, *checks_module.CHECKS))
    model = mlp()
    x, y = digits()
    w = train(
        model,
        torch.optim.SGD(model.parameters(), lr=0.05),
        loader(x[:320], y[:320]),
        epochs=2,
        zero_grad=False,
    )
    assert "grad-not-zeroed" in codes(w)  # the other checks ran
    errs = [f for f in w.findings if f.code == "internal-error"]
    assert len(errs) == 1 and errs[0].severity == "info"
    assert "broken" in errs[0].message and "rule exploded" in errs[0].message and "report" in errs[0].hint
    assert errs[0].evidence["count"] == len(w.internal_errors) > 1  # counted each time, reported once
    assert serious(w) == [f"grad-not-zeroed: {f.message}" for f in w.findings if f.code == "grad-not-zeroed"]


def test_a_hook_that_raises_is_surfaced(monkeypatch):
    import nbdebug.monitor.activations as activations

    monkeypatch.setattr(activations, "unit_maxima", lambda out: 1 / 0)
    model = mlp()
    x, y = digits()
    w = train(model, torch.optim.SGD(model.parameters(), lr=0.05), loader(x[:128], y[:128]), epochs=1)
    assert w.steps == 2 and [f.code for f in w.findings] == ["internal-error"]
    f = w.findings[0]
    assert f.severity == "info" and "ZeroDivisionError" in f.message
    assert any(e.startswith("_forward_hook: ZeroDivisionError") for e in f.evidence["errors"])


def test_internal_error_finding_names_the_first_error_and_the_count():
    f = internal_error_finding(["check_x: KeyError: 'a'", "check_y: ValueError: b"])
    assert f.code == "internal-error" and f.severity == "info"
    assert "check_x" in f.message and "2 in all" in f.message and f.evidence["count"] == 2


# -- degenerate loops ----------------------------------------------------------------------------------


def _loop(model, opt, steps: int = 8, step: bool = True, backward: bool = True, train_mode: bool = True):
    x, y = digits()
    with nbdebug.watch(model, opt) as w:
        model.train(train_mode)
        for i in range(steps):
            xb, yb = x[i * 16 : (i + 1) * 16], y[i * 16 : (i + 1) * 16]
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            if not loss.requires_grad:  # the SAM workaround: hides autograd's error
                loss.requires_grad = True
            if backward:
                loss.backward()
            if step:
                opt.step()
    return w


def _pretrained(model: nn.Module, steps: int = 20) -> nn.Module:
    """A stand-in for pretrained weights: Adam at 1e-2 on the digits, unwatched."""
    x, y = digits()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for i in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]).backward()
        opt.step()
    return model


def test_every_parameter_frozen_is_named_at_the_first_step_without_internal_errors():
    """Issue 14 symptom 6: every parameter frozen by mistake, the optimizer built anyway."""
    model = mlp()
    model.requires_grad_(False)
    w = _loop(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    assert w.internal_errors == []
    f = next(f for f in w.findings if f.code == "frozen-by-accident")
    assert f.severity == "error" and w.found_at("frozen-by-accident") == 1
    assert f"all {len(list(model.parameters()))} parameters" in f.message


def test_an_optimizer_with_only_empty_parameter_groups_is_named():
    model = mlp()
    opt = torch.optim.SGD([{"params": [p for n, p in model.named_parameters() if "head" in n]}], lr=0.1)
    w = _loop(model, opt)
    f = next(f for f in w.findings if f.code == "frozen-by-accident")
    assert f.severity == "error" and "empty" in f.message and w.internal_errors == []


def test_a_backbone_frozen_on_purpose_is_silent_and_a_frozen_group_is_advice():
    """Only the head in the optimizer: silent. The backbone in its own group while frozen (to unfreeze
    later): info, not an alarm. Fine-tuning with parameter groups at two learning rates: no alarm.
    The backbone holds trained weights, as one frozen on purpose does (frozen at its random init, it
    would be frozen-by-accident: tests/test_freeze_checks.py)."""
    model = _pretrained(mlp())
    model[0].requires_grad_(False)
    model[2].requires_grad_(False)
    head_only = _loop(model, torch.optim.SGD(model[4].parameters(), lr=0.1))
    assert head_only.findings == []
    grouped = torch.optim.SGD(
        [
            {"params": [*model[0].parameters(), *model[2].parameters()], "lr": 1e-3},
            {"params": model[4].parameters()},
        ],
        lr=0.1,
    )
    w = _loop(model, grouped)
    assert serious(w) == [] and [(f.code, f.severity) for f in w.findings] == [("frozen-by-accident", "info")]
    model.requires_grad_(True)
    groups = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 1e-3}, {"params": model[4].parameters()}], lr=0.05
    )
    # model[2] is in neither group but still gets gradients: advice (frozen by omission), not an alarm
    w = _loop(model, groups)
    assert [(f.code, f.severity, f.where) for f in w.findings] == [("params-not-in-optimizer", "info", "2")]


@pytest.mark.parametrize("train_mode", [True, False])
def test_backward_passes_without_a_step_in_train_mode_are_optimizer_never_steps(train_mode):
    """In train mode it is the forgotten optimizer.step(); in eval mode it is analysis (saliency): silent."""
    model = mlp()
    w = _loop(model, torch.optim.SGD(model.parameters(), lr=0.1), steps=12, step=False, train_mode=train_mode)
    assert w.steps == 0
    if not train_mode:
        assert w.findings == []
        return
    f = next(f for f in w.findings if f.code == "optimizer-never-steps")
    assert f.severity == "warning" and "12 backward" in f.message and w.found_at("optimizer-never-steps") == 0


def test_steps_without_any_backward_are_named():
    model = mlp()
    w = _loop(model, torch.optim.SGD(model.parameters(), lr=0.1), backward=False)
    f = next(f for f in w.findings if f.code == "no-grad")
    assert f.severity == "error" and "no backward pass" in f.message


def test_forward_passes_only_is_advice():
    model = mlp()
    w = _loop(model, torch.optim.SGD(model.parameters(), lr=0.1), backward=False, step=False)
    assert [(f.code, f.severity) for f in w.findings] == [("optimizer-never-steps", "info")]


# -- learning-rate schedules --------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["steplr-per-batch", "onecycle", "cosine", "steplr-per-epoch"])
def test_a_per_epoch_schedule_stepped_every_batch_is_named(schedule):
    """StepLR(step_size=7, gamma=0.1) stepped every batch (the transfer-learning tutorial's mistake): the
    learning rate is 1e-13 x its start by the end of the first epoch. OneCycleLR and cosine annealing per
    batch, and StepLR per epoch, are the healthy counterparts."""
    x, y = digits()
    dl = loader(x[:640], y[:640], 16)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    total = 3 * len(dl)
    sched = {
        "steplr-per-batch": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1),
        "steplr-per-epoch": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1),
        "onecycle": lambda: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
    }[schedule]()
    with nbdebug.watch(model, opt) as w:
        for _ in range(3):
            for xb, yb in dl:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                if schedule != "steplr-per-epoch":
                    sched.step()
            if schedule == "steplr-per-epoch":
                sched.step()
    if schedule != "steplr-per-batch":
        assert serious(w) == []
        return
    assert codes(w) == {"lr-schedule-collapse"}
    f = w.findings[0]
    assert f"StepLR(step_size=7, gamma=0.1) was stepped {total} times in {total} optimizer steps" in f.message
    assert f.evidence["last"] < 1e-3 * f.evidence["top"] and "once per epoch" in f.hint


def test_the_panels_and_watch_gan_show_withdrawn_findings():
    """The live panel's findings area and watch_gan's text/HTML/panel list withdrawn findings apart."""
    from nbdebug._core.findings import Finding
    from nbdebug.monitor.gan_panel import GanPanel
    from nbdebug.monitor.panel import watch_panel
    from tests import gan_loops as L

    w = _plateau_then_fall()
    panel = watch_panel(w)
    panel.finish()
    assert (
        'data-code="loss-not-decreasing"' in panel.findings.value
        and "nbdebug-withdrawn" in panel.findings.value
    )

    D, G = L.mlp_d(), L.mlp_g()
    g = nbdebug.watch_gan(D, G, L.adam(D), L.adam(G))
    flat = Finding("loss-not-decreasing", "warning", "flat", "", "loss")
    nan = Finding("nonfinite", "error", "NaN", "", "D")
    g._record([flat, nan], 3, running=False)
    g._record([], 9, running=False, why=lambda f: "the loss then fell")
    assert [f.code for f in g.findings] == ["nonfinite"]  # an event stays
    assert [(e.step, e.finding.code, e.reason) for e in g.withdrawn] == [
        (9, "loss-not-decreasing", "the loss then fell")
    ]
    assert "Withdrawn (1)" in g.to_text() and "nbdebug-withdrawn" in g.to_html()
    assert "nbdebug-withdrawn" in GanPanel(g).findings.value
    assert [(e.step, e.action) for e in g.finding_history] == [(3, "raised"), (3, "raised"), (9, "withdrawn")]
