"""Parameter and optimizer wiring (issue 15 item 1): layers in a plain list (`unregistered-submodule`),
parameters no optimizer holds (`params-not-in-optimizer`), an optimizer built before the model was
re-created (`optimizer-stale-params`). Each rule is tested just below and just above what is conclusive,
against what PyTorch really does (the weights that did or did not move), and on its healthy counterparts:
a backbone frozen on purpose, parameter groups, a second optimizer, a hand-written update."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug._core.wiring import find_unregistered
from tests.watch_loops import serious, single_thread  # noqa: F401  (autouse fixture)


class ListNet(nn.Module):
    """The pytorch/pytorch#715 model: hidden layers in `self.hids`, a plain list unless `registered`."""

    def __init__(self, registered: bool, n_in: int = 8, hidden: int = 16, n_out: int = 3) -> None:
        super().__init__()
        hids = [
            nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU()),
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()),
        ]
        self.hids = nn.ModuleList(hids) if registered else hids
        self.classifier = nn.Linear(hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hids:
            x = layer(x)
        return self.classifier(x)


def data(n: int = 20, n_in: int = 8, n_out: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(16, n_in, generator=g), torch.randint(0, n_out, (16,), generator=g)) for _ in range(n)
    ]


def loop(model: nn.Module, opts, batches, loss_fn=F.cross_entropy, watch_opt=None, extra=None):
    """The textbook loop under watch; `opts` all step after one backward; `extra()` adds to the loss."""
    opts = opts if isinstance(opts, (list, tuple)) else [opts]
    with nbdebug.watch(model, watch_opt if watch_opt is not None else opts[0]) as w:
        for x, y in batches:
            for o in opts:
                o.zero_grad()
            loss = loss_fn(model(x), y) + (extra() if extra else 0)
            loss.backward()
            for o in opts:
                o.step()
    assert w.internal_errors == []
    return w


def found(w, code: str):
    return [f for f in w.findings if f.code == code]


# -- unregistered-submodule: what the structure says -------------------------------------------------
def test_find_unregistered_sees_lists_dicts_and_nesting_but_not_what_is_registered_elsewhere():
    assert [u.attr for u in find_unregistered(ListNet(registered=False))] == ["hids"]
    assert find_unregistered(ListNet(registered=True)) == []

    class Aliases(nn.Module):  # a list of modules that are also attributes: registered, fine
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)
            self.blocks = [self.a, self.b]
            self.scale = [torch.ones(2)]  # a plain tensor: a constant, not a parameter
            self.frozen = [nn.Linear(2, 2).requires_grad_(False)]  # nothing trainable
            self.names = ["a", "b"]

    assert find_unregistered(Aliases()) == []

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = {"cls": nn.Linear(4, 2), "box": nn.Linear(4, 4)}
            self.scales = [nn.Parameter(torch.ones(1)), nn.Parameter(torch.ones(1))]
            self.inner = nn.Sequential(nn.Linear(4, 4))
            self.inner.extra = ([nn.Linear(4, 1), nn.ReLU()],)  # a tuple of lists, on a submodule

    got = {u.attr: u for u in find_unregistered(Mixed())}
    assert set(got) == {"heads", "scales", "inner.extra"}
    assert got["heads"].wrapper == "nn.ModuleDict" and got["heads"].n_params == 4
    assert got["scales"].wrapper == "nn.ParameterList" and got["scales"].numel == 2
    assert got["inner.extra"].container == "tuple" and got["inner.extra"].n_params == 2


# -- unregistered-submodule under watch --------------------------------------------------------------
def test_layers_in_a_plain_list_are_named_from_the_first_step_and_really_never_train():
    torch.manual_seed(0)
    model = ListNet(registered=False)
    before = [p.detach().clone() for layer in model.hids for p in layer.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    w = loop(model, opt, data())
    (f,) = found(w, "unregistered-submodule")
    assert f.severity == "warning" and f.where == "model.hids"
    assert "nn.ModuleList" in f.hint and "self.hids" in f.hint
    assert w.found_at("unregistered-submodule") == 1
    after = [p.detach() for layer in model.hids for p in layer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # what the finding says: they never moved


def test_the_fix_nn_modulelist_is_silent():
    torch.manual_seed(0)
    model = ListNet(registered=True)
    w = loop(model, torch.optim.Adam(model.parameters(), lr=1e-2), data())
    assert serious(w) == [] and found(w, "unregistered-submodule") == []


def test_a_hidden_module_nothing_reaches_is_advice_only_at_the_end():
    class WithTeacher(nn.Module):  # a teacher kept out of parameters() on purpose, used under no_grad
        def __init__(self) -> None:
            super().__init__()
            self.student = nn.Linear(8, 3)
            self._teacher = [nn.Linear(8, 3)]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                self._teacher[0](x)
            return self.student(x)

    model = WithTeacher()
    w = loop(model, torch.optim.SGD(model.parameters(), lr=0.1), data(5))
    (f,) = found(w, "unregistered-submodule")
    assert f.severity == "info" and "_teacher" in f.where


def test_unregistered_layers_given_to_the_optimizer_by_hand_train_so_it_is_advice():
    torch.manual_seed(0)
    model = ListNet(registered=False)
    params = [*model.parameters(), *(p for layer in model.hids for p in layer.parameters())]
    w = loop(model, torch.optim.Adam(params, lr=1e-2), data(5))
    (f,) = found(w, "unregistered-submodule")
    assert f.severity == "info" and "state_dict" in f.message


def test_check_names_the_list_and_restores_the_gradients_it_touched():
    torch.manual_seed(0)
    model = ListNet(registered=False)
    hidden = [p for layer in model.hids for p in layer.parameters()]
    marker = torch.full_like(hidden[0], 7.0)
    hidden[0].grad = marker
    x, y = data(1)[0]
    report = nbdebug.check(model, (x, y), F.cross_entropy)
    f = next(f for f in report.findings if f.code == "unregistered-submodule")
    assert f.severity == "warning" and f.where == "model.hids"
    assert hidden[0].grad is marker and all(p.grad is None for p in hidden[1:])
    fixed = nbdebug.check(ListNet(registered=True), (x, y), F.cross_entropy)
    assert not [f for f in fixed.findings if f.code == "unregistered-submodule"]


# -- params-not-in-optimizer -------------------------------------------------------------------------
def head_left_out(n_steps: int):
    """zjunlp/HVPNeT#5: the head's parameter group is built but never appended."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    groups = [{"params": list(model[0].parameters()), "lr": 1e-2}]
    head_group = {"params": list(model[2].parameters()), "lr": 5e-2}  # noqa: F841  (never appended)
    return model, torch.optim.AdamW(groups), data(n_steps)


def test_a_head_no_optimizer_holds_is_named_after_two_steps_not_one():
    model, opt, batches = head_left_out(2)
    head = model[2].weight.detach().clone()
    with nbdebug.watch(model, opt) as w:
        for i, (x, y) in enumerate(batches):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            if i == 0:  # one step: a second optimizer may still step the rest
                assert found(w, "params-not-in-optimizer") == []
    (f,) = found(w, "params-not-in-optimizer")
    assert f.severity == "warning" and f.where == "2"
    assert f.evidence["params"] == ["2.weight", "2.bias"]
    assert torch.equal(model[2].weight, head)


def test_one_step_is_enough_once_the_run_is_over():
    model, opt, batches = head_left_out(1)
    w = loop(model, opt, batches)
    assert [f.severity for f in found(w, "params-not-in-optimizer")] == ["warning"]


def test_parameters_of_the_loss_module_outside_the_model_are_named():
    """ifzhang/FairMOT#125: the ID classifier and the task weights live in the loss module."""
    torch.manual_seed(0)
    model = nn.Linear(8, 16)
    loss_fn = nn.Linear(16, 10)  # the classifier the loss owns, at its initialization
    s_id = nn.Parameter(torch.zeros(1))
    w = loop(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        data(4),
        loss_fn=lambda out, y: F.cross_entropy(loss_fn(out), y) * torch.exp(-s_id) + s_id,
    )
    (f,) = found(w, "params-not-in-optimizer")
    assert f.severity == "warning" and f.evidence["outside"] == 3 and "outside the model" in f.message


def test_healthy_wiring_stays_silent():
    torch.manual_seed(0)
    # a backbone frozen on purpose, only the head in the optimizer
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[0].requires_grad_(False)
    w = loop(model, torch.optim.SGD(model[2].parameters(), lr=0.1), data(6))
    assert w.findings == [] or serious(w) == []
    assert found(w, "params-not-in-optimizer") == []
    # fine-tuning with parameter groups (head at 10x the learning rate)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.1}]
    w = loop(model, torch.optim.SGD(groups, lr=0.01), data(6))
    assert found(w, "params-not-in-optimizer") == [] and serious(w) == []
    # two optimizers, the watch given only the first: the second is seen stepping the rest
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opts = [torch.optim.SGD(model[0].parameters(), lr=0.05), torch.optim.Adam(model[2].parameters(), lr=1e-3)]
    w = loop(model, opts, data(6))
    assert found(w, "params-not-in-optimizer") == [] and serious(w) == []


def test_a_backbone_left_out_of_the_optimizer_while_it_gets_gradients_is_advice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    w = loop(model, torch.optim.SGD(model[2].parameters(), lr=0.1), data(6))
    (f,) = found(w, "params-not-in-optimizer")
    assert f.severity == "info" and "requires_grad_(False)" in f.hint


def test_a_hand_written_update_of_a_parameter_no_optimizer_holds_is_not_a_bug():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model[0].parameters(), lr=0.1)
    with nbdebug.watch(model, opt) as w:
        for x, y in data(6):
            opt.zero_grad()
            model[2].zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            with torch.no_grad():
                for p in model[2].parameters():
                    p -= 0.1 * p.grad
    assert found(w, "params-not-in-optimizer") == []


# -- optimizer-stale-params --------------------------------------------------------------------------
def test_a_model_re_created_after_its_optimizer_is_named_at_the_first_step_and_the_loop_runs():
    """pytorch/pytorch#54765: net1 = Net(); opt = Adam(net1.parameters()); net1 = Net2()."""
    torch.manual_seed(0)
    net1 = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(net1.parameters(), lr=3e-2)
    net1 = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))
    before = [p.detach().clone() for p in net1.parameters()]
    w = loop(net1, optimizer, data(12))
    (f,) = found(w, "optimizer-stale-params")
    assert f.severity == "error" and w.found_at("optimizer-stale-params") == 1
    assert f.evidence["stale"] == 4 and f.evidence["params"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "no-grad" not in {g.code for g in w.findings}  # the stale tensors' missing gradients are its story
    assert all(torch.equal(a, b) for a, b in zip(before, net1.parameters()))


def test_a_layer_replaced_after_the_optimizer_was_built_is_named():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model[2] = nn.Linear(16, 3)  # a new head, after the optimizer
    w = loop(model, opt, data(4))
    (f,) = found(w, "optimizer-stale-params")
    assert f.evidence["stale"] == 2 and f.evidence["params"] == ["2.weight", "2.bias"]
    assert found(w, "params-not-in-optimizer") == []


def test_an_optimizer_rebuilt_after_the_new_layer_is_silent():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    model[2] = nn.Linear(16, 3)
    w = loop(model, torch.optim.SGD(model.parameters(), lr=0.1), data(8))
    assert found(w, "optimizer-stale-params") == [] and serious(w) == []


def test_extra_tensors_in_the_optimizer_are_not_stale_while_the_model_is_fully_held():
    """A learned temperature the loss uses, in the optimizer beside the model: reached, so not stale; an
    unused extra tensor alone is not the bug either (nothing of the model is left out)."""
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    temp, unused = nn.Parameter(torch.ones(1)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([*model.parameters(), temp, unused], lr=1e-3)
    w = loop(model, opt, data(4), loss_fn=lambda out, y: F.cross_entropy(out / temp, y))
    assert found(w, "optimizer-stale-params") == [] and found(w, "params-not-in-optimizer") == []


@pytest.mark.parametrize("bad", ["model", "optimizer"])
def test_bad_arguments_still_raise(bad):
    model = nn.Linear(2, 2)
    with pytest.raises(nbdebug.NbdebugError, match="nn.Module as model" if bad == "model" else "torch.optim"):
        nbdebug.watch(torch.zeros(2) if bad == "model" else model, None if bad == "model" else model)


def test_a_pretrained_loss_network_left_trainable_is_advice():
    """A perceptual loss through a pretrained network whose requires_grad was left on: its gradients are
    computed for nothing, but nothing that should train is left out."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(3, 32), nn.Tanh())
    with torch.no_grad():  # "pretrained": far from the default init
        for p in features.parameters():
            p.normal_(0, 1.0)
    model = nn.Linear(8, 3)
    w = loop(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-3),
        data(4),
        loss_fn=lambda out, y: F.mse_loss(features(out), features(F.one_hot(y, 3).float())),
    )
    (f,) = found(w, "params-not-in-optimizer")
    assert f.severity == "info" and f.evidence["outside"] == 2 and "requires_grad_(False)" in f.hint


def test_watching_a_stale_optimizer_changes_nothing_it_trains():
    """Same seed, same weights (old and new network) with and without watch."""

    def weights(watched: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        old = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = torch.optim.Adam(old.parameters(), lr=1e-2)
        model = ListNet(registered=False)
        if watched:
            loop(model, opt, data(5))
        else:
            for x, y in data(5):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
        return [p.detach().clone() for p in [*old.parameters(), *model.parameters()]]

    assert all(torch.equal(a, b) for a, b in zip(weights(True), weights(False)))
