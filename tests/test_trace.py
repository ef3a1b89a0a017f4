"""trace(): steps checked against what the layers actually produce, errors pinpointed, model untouched."""

from __future__ import annotations

import dataclasses
from collections import namedtuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nbdebug
from nbdebug import NbdebugError
from nbdebug._core.hooks import hook_counts
from tests.models import DenoisingAutoencoder, Residual, SmallCNN, UNetish


def _actual_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Output shape of every named submodule, from plain forward hooks (the ground truth)."""
    seen: dict[str, tuple[int, ...]] = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, tuple(output.shape))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_autoencoder_steps_match_real_layer_outputs():
    model, x = DenoisingAutoencoder(), torch.randn(8, 1, 28, 28)
    t = nbdebug.trace(model, x)
    assert t.ok and t.error is None
    actual = _actual_shapes(model, x)
    modules = {s.name: s for s in t.steps if s.kind == "module" and s.index > 0}
    assert set(modules) == set(actual)
    for name, shape in actual.items():
        assert modules[name].output_shapes == [shape], name
    assert t.steps[0].output_shapes == [(8, 1, 28, 28)]
    assert [s.index for s in t.steps] == list(range(len(t.steps)))
    conv = t["encoder.0"]
    assert "H_out = floor((28 + 2*1 - 1*(3-1) - 1) / 2) + 1 = 14" in conv.formula
    assert "H_out = (14 - 1)*2 - 2*1 + 1*(3-1) + 1 + 1 = 28" in t["decoder.2"].formula
    assert conv.params == sum(p.numel() for p in model.encoder[0].parameters())
    assert conv.dtype == "float32"
    assert t["encoder"].is_container and t["encoder.0"].parent == t["encoder"].index


def test_functional_ops_are_steps_and_builtin_internals_are_not():
    model, x = UNetish(), torch.randn(2, 3, 16, 16)
    t = nbdebug.trace(model, x)
    fns = [s for s in t.steps if s.kind == "function"]
    types = [s.type for s in fns]
    assert types == ["F.interpolate", "torch.cat", "Tensor.permute", "Tensor.reshape"], types
    cat = fns[1]
    assert cat.input_shapes == [(2, 8, 16, 16), (2, 3, 16, 16)]
    assert cat.output_shapes == [(2, 11, 16, 16)]
    assert fns[-1].output_shapes == [tuple(model(x).shape)]
    # the F.conv2d inside each nn.Conv2d is part of the layer, not a step of its own
    assert not any("conv2d" in s.type for s in fns)


def test_residual_add_and_flatten_are_steps():
    t = nbdebug.trace(nn.Sequential(Residual(4), nn.Flatten()), torch.randn(2, 4, 5, 5))
    assert [s.type for s in t.steps if s.kind == "function"] == ["Tensor.add", "F.relu"]
    flatten = t["1"]
    assert flatten.output_shapes == [(2, 100)] and "= 100" in flatten.formula


def test_flatten_and_view_functions_get_formula_and_real_shape():
    class M(nn.Module):
        def forward(self, x):
            return torch.flatten(x, 1).view(-1, 2, 50)

    t = nbdebug.trace(M(), torch.randn(3, 4, 5, 5))
    flat, view = t.steps[1], t.steps[2]
    assert flat.type == "torch.flatten" and flat.output_shapes == [(3, 100)]
    assert "= 100" in flat.formula
    assert view.output_shapes == [(3, 2, 50)]


def test_module_called_twice_shows_each_call():
    shared = nn.Linear(4, 4)

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = shared
            self.alias = shared  # weight sharing: same module under two names

        def forward(self, x):
            for _ in range(3):
                x = self.block(x)
            return self.alias(x)

    t = nbdebug.trace(Loop(), torch.randn(2, 4))
    calls = [s for s in t.steps if s.type == "Linear"]
    assert [s.call for s in calls] == [1, 2, 3, 4]
    assert calls[1].name.endswith("(call 2)")


def test_several_inputs_kwargs_and_batches():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 5), nn.Linear(4, 5)

        def forward(self, x, y, scale=1.0, mask=None):
            out = self.a(x) + self.b(y)
            return out * mask if mask is not None else out

    m, x, y = Two(), torch.randn(2, 3), torch.randn(2, 4)
    assert nbdebug.trace(m, x, y).steps[0].input_shapes == [(2, 3), (2, 4)]
    t = nbdebug.trace(m, x, y, mask=torch.ones(2, 5))
    assert t.steps[0].input_shapes == [(2, 3), (2, 4), (2, 5)] and t.ok
    assert nbdebug.trace(m, (x, y)).steps[0].input_shapes == [(2, 3), (2, 4)]
    assert nbdebug.trace(m, {"x": x, "y": y}).ok
    assert nbdebug.trace(m, [x, y]).ok


Pair = namedtuple("Pair", "a b")


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    hidden: torch.Tensor


def test_nested_outputs_lstm_dict_namedtuple_dataclass():
    lstm = nn.LSTM(10, 20, batch_first=True)
    t = nbdebug.trace(lstm, torch.randn(8, 5, 10))
    assert t.steps[0].output_shapes == [(8, 5, 20), (1, 8, 20), (1, 8, 20)]
    assert t.steps[0].output_repr == "((8, 5, 20), ((1, 8, 20), (1, 8, 20)))"

    class Heads(nn.Module):
        def __init__(self, kind):
            super().__init__()
            self.fc, self.kind = nn.Linear(3, 4), kind

        def forward(self, x):
            h = self.fc(x)
            if self.kind == "dict":
                return {"logits": h, "hidden": x}
            if self.kind == "namedtuple":
                return Pair(h, x)
            return Out(h, x)

    x = torch.randn(2, 3)
    assert nbdebug.trace(Heads("dict"), x).output_repr == "{logits: (2, 4), hidden: (2, 3)}"
    assert nbdebug.trace(Heads("namedtuple"), x).output_repr == "Pair(a=(2, 4), b=(2, 3))"
    t = nbdebug.trace(Heads("dataclass"), x)
    assert t.output_repr == "Out(logits=(2, 4), hidden=(2, 3))"
    assert t.steps[0].output_shapes == [(2, 4), (2, 3)]


# --- failures --------------------------------------------------------------------------------------


def test_linear_after_flatten_is_pinpointed_with_hint():
    model = SmallCNN(in_features=3136)  # right for 28x28 input; the input is 14x14
    x = torch.randn(8, 1, 14, 14)
    t = nbdebug.trace(model, x)
    assert t.error is not None
    assert t.error.where == "fc" and t.error.type == "Linear"
    assert t.error.input_shapes == [(8, 2304)]
    assert "mat1 and mat2" in t.error.message
    assert "expected last dimension 3136 (in_features) but got 2304" in t.error.hint
    assert "(8, 64, 6, 6)" in t.error.hint
    assert t.failing_step.status == "error" and t.failing_step.name == "fc"
    # the steps before the failure are all kept, with their real shapes
    assert [s.name for s in t.steps] == ["SmallCNN", "conv", "bn", "relu", "pool", "flatten", "drop", "fc"]
    assert t["pool"].output_shapes == [(8, 64, 6, 6)]
    assert t.steps[0].status == "incomplete"
    with pytest.raises(NbdebugError, match=r"fc \(Linear\).*3136"):
        t.raise_for_error()


def test_conv_channel_mismatch_hint():
    t = nbdebug.trace(nn.Sequential(nn.Conv2d(3, 8, 3)), torch.randn(2, 28, 28, 3))
    assert t.error.where == "0"
    assert "expected 3 input channels" in t.error.hint and "permute(0, 3, 1, 2)" in t.error.hint


def test_cat_mismatch_is_a_function_step_error():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.Conv2d(3, 3, 3, stride=2, padding=1)

        def forward(self, x):
            return torch.cat([self.down(x), x], dim=1)

    t = nbdebug.trace(Skip(), torch.randn(1, 3, 15, 15))
    assert t.error.type == "torch.cat"
    assert t.failing_step.kind == "function"
    assert t.error.input_shapes == [(1, 3, 8, 8), (1, 3, 15, 15)]
    assert "same size except in the joined dimension" in t.error.hint


def test_residual_shortcut_mismatch_hint():
    t = nbdebug.trace(Residual(4, stride=2, shortcut=False), torch.randn(1, 4, 8, 8))
    assert t.error.type == "Tensor.add"
    assert "shortcut" in t.error.hint and "(1, 8, 4, 4), (1, 4, 8, 8)" in t.error.hint


def test_bad_arguments_raise_nbdebug_error():
    with pytest.raises(NbdebugError, match="needs an nn.Module.*got Tensor"):
        nbdebug.trace(torch.randn(3), torch.randn(3))
    with pytest.raises(NbdebugError, match="needs the input for Linear"):
        nbdebug.trace(nn.Linear(2, 2))
    with pytest.raises(NbdebugError, match="only supports 'meta'"):
        nbdebug.trace(nn.Linear(2, 2), torch.randn(1, 2), device="cpu")


# --- the model comes back unchanged ----------------------------------------------------------------


def _snapshot(model):
    return (
        hook_counts(model),
        [m.training for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
    )


def _assert_same(model, before):
    hooks, modes, state, req = _snapshot(model)
    assert hooks == before[0]
    assert modes == before[1]
    assert req == before[3]
    for k, v in before[2].items():
        assert torch.equal(state[k], v), k


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_success_restores_everything(mode):
    model = SmallCNN()
    model.train(mode == "train")
    model.conv.weight.requires_grad_(False)
    model.fc.register_forward_hook(lambda *a: None)  # the user's own hook stays
    before = _snapshot(model)
    x = torch.randn(4, 1, 14, 14)
    rng = torch.get_rng_state()
    t = nbdebug.trace(model, x)
    assert t.ok
    _assert_same(model, before)  # BatchNorm running stats restored even in train mode
    assert torch.equal(torch.get_rng_state(), rng)  # dropout drew random numbers; RNG restored


def test_exception_restores_everything():
    model = SmallCNN(in_features=5)
    before = _snapshot(model)
    t = nbdebug.trace(model, torch.randn(4, 1, 14, 14))
    assert t.error is not None
    _assert_same(model, before)


def test_keyboard_interrupt_propagates_and_restores():
    class Interrupt(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = SmallCNN()

        def forward(self, x):
            self.body(x)
            raise KeyboardInterrupt

    model = Interrupt()
    model.body.eval()
    before = _snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        nbdebug.trace(model, torch.randn(4, 1, 14, 14))
    _assert_same(model, before)
    # and no torch function mode is left behind
    assert not torch.overrides._get_current_function_mode_stack()


def test_no_gradients_recorded():
    model = SmallCNN()
    nbdebug.trace(model, torch.randn(2, 1, 14, 14))
    assert all(p.grad is None for p in model.parameters())


# --- meta device -----------------------------------------------------------------------------------


def test_model_built_on_meta_is_traced():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4096, 4096), nn.GELU(), nn.Linear(4096, 8))
    t = nbdebug.trace(model, torch.randn(2, 4096))  # a real input is moved to meta automatically
    assert t.ok and t.device == "meta"
    assert t.steps[-1].output_shapes == [(2, 8)]
    assert all(s.preview is None for s in t.steps)


def test_device_meta_for_real_model_matches_real_shapes_without_touching_weights():
    model, x = DenoisingAutoencoder(), torch.randn(8, 1, 28, 28)
    weight = model.encoder[0].weight
    ptr = weight.data_ptr()
    real = nbdebug.trace(model, x)
    meta = nbdebug.trace(model, x, device="meta")
    assert meta.ok and meta.device == "meta"
    assert [s.output_shapes for s in meta.steps] == [s.output_shapes for s in real.steps]
    assert [s.formula for s in meta.steps] == [s.formula for s in real.steps]
    assert model.encoder[0].weight is weight and weight.data_ptr() == ptr
    assert weight.device.type == "cpu"


def test_meta_errors_are_pinpointed_too():
    t = nbdebug.trace(SmallCNN(in_features=3136), torch.randn(8, 1, 14, 14), device="meta")
    assert t.error.where == "fc" and "2304" in t.error.hint


# --- results render without a kernel -----------------------------------------------------------------


def test_frame_and_reprs():
    t = nbdebug.trace(DenoisingAutoencoder(), torch.randn(2, 1, 28, 28))
    df = t.to_frame()
    for col in [
        "index",
        "name",
        "kind",
        "type",
        "input_shapes",
        "output_shapes",
        "dtype",
        "params",
        "formula",
    ]:
        assert col in df.columns
    assert len(df) == len(t.steps)
    bundle = t._repr_mimebundle_()
    assert "encoder.0" in bundle["text/plain"] and "<table" in bundle["text/html"]
    assert "H_out = floor((28 + 2*1" in bundle["text/html"]
    failing = nbdebug.trace(SmallCNN(in_features=5), torch.randn(2, 1, 14, 14))
    html = failing._repr_mimebundle_()["text/html"]
    assert 'data-status="error"' in html and "nbdebug-trace-error" in html
    assert "ERROR forward pass failed at fc (Linear)" in failing._repr_mimebundle_()["text/plain"]


def test_previews_for_image_like_outputs():
    t = nbdebug.trace(DenoisingAutoencoder(), torch.randn(2, 1, 28, 28))
    conv = t["encoder.0"]
    assert conv.preview is not None and conv.preview.shape == (8, 14, 14)
    assert t["encoder"].preview is None  # containers: see their children
    root = t.steps[0]
    assert root.preview_of == "input" and root.preview.shape == (1, 28, 28)
    lin = nbdebug.trace(nn.Linear(3, 4), torch.randn(2, 3))
    assert lin.steps[0].preview is None
    assert lin.steps[0].preview is None


def test_preview_is_the_real_activation():
    model, x = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1)), torch.randn(1, 1, 10, 10)
    t = nbdebug.trace(model, x)
    with torch.no_grad():
        assert torch.allclose(t.steps[1].preview, model(x)[0])


def test_trace_functional_relu_inside_custom_module_under_builtin_container():
    class Act(nn.Module):
        def forward(self, x):
            return F.relu(x) * 2

    t = nbdebug.trace(nn.Sequential(nn.Linear(3, 3), Act()), torch.randn(2, 3))
    assert [s.type for s in t.steps if s.kind == "function"] == ["F.relu", "operator *"] or [
        s.type for s in t.steps if s.kind == "function"
    ] == ["F.relu", "Tensor.mul"]
