"""tests/unchanged.py catches each kind of change, one at a time, and names it; and stays quiet when nothing
changed (a plain eval forward pass of models with pruning, parametrizations, hooks and ScriptModules)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, prune
from torch.overrides import TorchFunctionMode

from tests.unchanged import CATEGORIES, assert_unchanged, changes, snapshot


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.conv(x)))


def _noop_hook(*args, **kwargs) -> None:
    return None


class _Mode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


# (id, mutation, category the change must be reported in, fragment the message must contain, undo)
# `undo` puts process-wide state back so that the next test starts clean.
def _set_param(m: Net) -> None:
    m.head[1].weight = nn.Parameter(m.head[1].weight.detach().clone())


def _param_to_meta(m: Net) -> None:
    m.conv._parameters["weight"] = nn.Parameter(torch.empty_like(m.conv.weight, device="meta"))


def _global_hook(m: Net):
    return nn.modules.module.register_module_forward_hook(_noop_hook)


_handles: list = []


def _keep(h):
    _handles.append(h)
    return h


def _push_mode(m: Net) -> None:
    mode = _Mode()
    mode.__enter__()
    _handles.append(mode)


def _pop_mode() -> None:
    _handles.pop().__exit__(None, None, None)


_saved_ce = F.cross_entropy


MUTATIONS: list[tuple[str, Callable[[Net], object], str, str, Callable[[], None] | None]] = [
    ("param_replaced", _set_param, "identity", "parameter 'head.1.weight' (Linear): object: object replaced", None),
    ("param_value", lambda m: m.conv.bias.data.add_(1), "values", "parameter 'conv.bias' (Conv2d): value: values changed", None),
    ("param_to_meta", _param_to_meta, "identity", "parameter 'conv.weight' (Conv2d): value: tensor -> meta", None),
    ("param_dtype", lambda m: m.head[1].half(), "values", "dtype torch.float32 -> torch.float16", None),
    ("param_removed", lambda m: delattr(m.conv, "bias") or m.conv.register_parameter("bias", None), "identity", "parameter 'conv.bias' (Conv2d): object: tensor(4,) on cpu -> None", None),
    ("buffer_value", lambda m: m.bn.running_mean.add_(1), "values", "buffer 'bn.running_mean' (BatchNorm2d): value: values changed", None),
    ("buffer_replaced", lambda m: setattr(m.bn, "running_var", m.bn.running_var.clone()), "identity", "buffer 'bn.running_var' (BatchNorm2d): object: object replaced", None),
    ("buffer_persistence", lambda m: m.bn._non_persistent_buffers_set.add("running_mean"), "state_dict", "non-persistent buffers", None),
    ("requires_grad", lambda m: m.conv.weight.requires_grad_(False), "requires_grad", "parameter 'conv.weight' (Conv2d): requires_grad: True -> False", None),
    ("grad", lambda m: setattr(m.conv.weight, "grad", torch.zeros_like(m.conv.weight)), "grads", "parameter 'conv.weight' (Conv2d): .grad", None),
    ("training", lambda m: m.bn.eval(), "training", "module bn (BatchNorm2d): training flag: True -> False", None),
    ("forward_hook", lambda m: m.conv.register_forward_hook(_noop_hook), "hooks", "module conv (Conv2d): hook table _forward_hooks: 0 -> 1", None),
    ("forward_pre_hook_kwargs", lambda m: m.register_forward_pre_hook(_noop_hook, with_kwargs=True), "hooks", "hook table _forward_pre_hooks_with_kwargs", None),
    ("always_call_hook", lambda m: m.head.register_forward_hook(_noop_hook, always_call=True), "hooks", "hook table _forward_hooks_always_called", None),
    ("backward_hook", lambda m: m.head[1].register_full_backward_hook(_noop_hook), "hooks", "module head.1 (Linear): hook table _backward_hooks", None),
    ("backward_pre_hook", lambda m: m.register_full_backward_pre_hook(_noop_hook), "hooks", "hook table _backward_pre_hooks", None),
    ("state_dict_hook", lambda m: m.register_state_dict_post_hook(_noop_hook), "hooks", "hook table _state_dict_hooks", None),
    ("load_state_dict_hook", lambda m: m.register_load_state_dict_post_hook(_noop_hook), "hooks", "hook table _load_state_dict_post_hooks", None),
    ("tensor_hook", lambda m: m.head[1].bias.register_hook(lambda g: g), "tensor_hooks", "parameter 'head.1.bias' (Linear): tensor hooks _backward_hooks", None),
    ("post_accumulate_hook", lambda m: m.conv.weight.register_post_accumulate_grad_hook(_noop_hook), "tensor_hooks", "_post_accumulate_grad_hooks", None),
    ("global_forward_hook", lambda m: _keep(_global_hook(m)), "global_hooks", "torch.nn.modules.module._global_forward_hooks: 0 -> 1", lambda: _handles.pop().remove()),
    ("tensor_attribute_added", lambda m: setattr(m.conv, "cached", torch.ones(2)), "tensor_attributes", "module conv (Conv2d): tensor attribute 'cached': added", None),
    ("submodule_replaced", lambda m: m.head.__setitem__(0, nn.Flatten()), "structure", "module 'head.0': object replaced", None),
    ("submodule_class", lambda m: setattr(m.head, "0", nn.Identity()), "structure", "class Flatten -> Identity", None),
    ("forward_monkeypatched", lambda m: setattr(m.conv, "forward", lambda x: x), "method_overrides", "module conv (Conv2d): instance attribute 'forward'", None),
    ("rng_torch", lambda m: torch.rand(1), "rng", "RNG state: changed: torch", None),
    ("rng_random", lambda m: random.random(), "rng", "RNG state: changed: random", None),
    ("rng_numpy", lambda m: np.random.rand(), "rng", "RNG state: changed: numpy", None),
    ("grad_mode", lambda m: torch.set_grad_enabled(False), "grad_mode", "grad mode (torch.is_grad_enabled): True -> False", lambda: torch.set_grad_enabled(True)),
    ("function_mode", _push_mode, "function_modes", "torch-function modes: [] -> ['_Mode']", _pop_mode),
    ("default_device", lambda m: torch.set_default_device("meta"), "defaults", "default device: 'cpu' -> 'meta'", lambda: torch.set_default_device(None)),
    ("default_dtype", lambda m: torch.set_default_dtype(torch.float64), "defaults", "default dtype", lambda: torch.set_default_dtype(torch.float32)),
    ("patched_function", lambda m: setattr(F, "cross_entropy", lambda *a, **k: None), "patched", "torch.nn.functional.cross_entropy", lambda: setattr(F, "cross_entropy", _saved_ce)),
]  # fmt: skip


@pytest.fixture
def net() -> Iterator[Net]:
    torch.manual_seed(0)
    yield Net()
    torch.set_grad_enabled(True)


@pytest.mark.parametrize(
    ("mutate", "category", "fragment", "undo"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS]
)
def test_each_change_is_caught_and_named(net: Net, mutate, category: str, fragment: str, undo) -> None:
    before = snapshot(net)
    assert_unchanged(net, before)  # nothing changed yet
    try:
        mutate(net)
        found = changes(net, before)
        with pytest.raises(AssertionError) as info:
            assert_unchanged(net, before)
    finally:
        if undo is not None:
            undo()
    message = str(info.value)
    assert fragment in message, message
    assert category in {c.category for c in found}, found
    # one thing changed: the report is about it (a parameter's value also shows in state_dict, a replaced
    # submodule brings its parameters' identities along), not about unrelated state
    related = {
        "identity": {"identity", "values", "requires_grad", "grads", "tensor_hooks", "state_dict"},
        "values": {"values", "state_dict"},
        "structure": {"structure", "identity", "values", "requires_grad", "grads", "tensor_hooks", "state_dict",
                      "training", "hooks", "method_overrides"},
        "state_dict": {"state_dict"},
        "defaults": {"defaults", "function_modes"},  # torch.set_default_device pushes a DeviceContext mode
    }.get(category, {category})  # fmt: skip
    assert {c.category for c in found} <= related, [str(c) for c in found]


def test_every_category_is_exercised() -> None:
    covered = {m[2] for m in MUTATIONS}
    assert CATEGORIES - covered <= {"optimizer_hooks", "optimizer_state"}, CATEGORIES - covered


def test_optimizer_state_and_hooks() -> None:
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = snapshot(model, optimizers=[opt])
    opt.register_step_post_hook(_noop_hook)
    with pytest.raises(AssertionError, match="optimizer 0: hook table _optimizer_step_post_hooks"):
        assert_unchanged(model, before, optimizers=[opt])
    x = torch.randn(4, 3)
    before = snapshot(model, optimizers=[opt])
    model(x).sum().backward()
    opt.step()
    with pytest.raises(AssertionError) as info:
        assert_unchanged(model, before, optimizers=[opt])
    text = str(info.value)
    assert "optimizer 0: state of param 0 'momentum_buffer': added" in text and "values changed" in text
    # a training loop's own changes can be set aside by category
    assert_unchanged(
        model, before, optimizers=[opt], ignore={"values", "state_dict", "grads", "optimizer_state"}
    )


def test_ignore_rejects_unknown_categories() -> None:
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="unknown categories"):
        assert_unchanged(model, snapshot(model), ignore={"weights"})


def _pruned() -> nn.Module:
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    prune.l1_unstructured(m[0], "weight", 0.5)
    parametrizations.weight_norm(m[3])
    m[3].register_forward_hook(_noop_hook)
    return m.eval()


def _scripted() -> nn.Module:
    return torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())).eval()


def _recurrent() -> nn.Module:
    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(6, 4, batch_first=True)

        def forward(self, x):
            return self.lstm(x.flatten(2)[..., :6])[0]

    return M().eval()


@pytest.mark.parametrize(
    "make",
    [Net, _pruned, _scripted, _recurrent],
    ids=["bn_eval", "pruned_weight_norm_hooks", "scripted", "lstm"],
)
def test_no_false_positive_after_a_plain_eval_forward(make) -> None:
    torch.manual_seed(0)
    model, x = make().eval(), torch.randn(2, 3, 6, 6)
    before = snapshot(model)
    with torch.no_grad():
        model(x)
    assert_unchanged(model, before)


def test_train_mode_forward_is_caught_as_the_buffers_and_rng_it_changes() -> None:
    """What trace must undo after a train-mode pass: BatchNorm statistics and the dropout RNG."""
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5)).train(), torch.randn(8, 4)
    before = snapshot(model)
    model(x)
    text = "\n".join(str(c) for c in changes(model, before))
    assert "buffer '1.running_mean' (BatchNorm1d): value: values changed" in text
    assert "buffer '1.num_batches_tracked' (BatchNorm1d): value: values changed" in text
    assert "RNG state: changed: torch" in text
