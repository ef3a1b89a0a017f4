"""`optimizer.step(closure)` (what Lightning always does, and LBFGS needs): the step is recorded once the
closure has run, so its loss and gradient norm are this step's, not the previous one's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import nbdebug
from tests.watch_loops import digits, loader, mlp, serious, single_thread  # noqa: F401


def _run(closure_style: bool, opt_kind: str = "sgd"):
    torch.manual_seed(0)
    x, y = digits()
    model = mlp()
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        if opt_kind == "sgd"
        else torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    )
    losses, norms = [], []
    with nbdebug.watch(model) as w:
        for xb, yb in loader(x[:320], y[:320], shuffle=False):
            first = [True]

            def closure(xb=xb, yb=yb, first=first):
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                if first.pop() if first else False:  # the first evaluation of this step
                    losses.append(loss.item())
                    norms.append(torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item())
                return loss

            if closure_style:
                opt.step(closure)
            else:
                closure()
                opt.step()
    return w, losses, norms


def test_step_with_a_closure_records_the_steps_own_loss_and_gradients():
    w, losses, norms = _run(True)
    plain, plain_losses, _ = _run(False)
    assert losses == plain_losses  # the closure form trains the same
    assert w.steps == 5 and w.history["loss"].tolist() == pytest.approx(losses, rel=1e-6)
    assert w.history["grad_norm"].tolist() == pytest.approx(norms, rel=1e-5)
    assert w.history["batch_size"].tolist() == [64] * 5 and (w.history["backwards"] == 1).all()
    assert serious(w) == [] and w.internal_errors == []


def test_lbfgs_evaluates_its_closure_several_times_in_one_step():
    w, losses, _ = _run(True, "lbfgs")
    assert w.steps == 5 and len(w.monitor.adopted) == 1
    # the step's loss is the closure's first evaluation, before LBFGS moved the weights
    assert w.history["loss"].tolist() == pytest.approx(losses, rel=1e-6)
    assert (w.history["backwards"] == 1).all() and w.internal_errors == []
