"""The hard cases: what breaks tools that walk a model (issue 16's list), each on a small model.

Sources: the issue's minimal reproductions (marked "issue 16"), PyTorch's documentation of the feature
(torch.jit, torch.compile, lazy modules, torch.nn.utils.prune / parametrize / parametrizations,
hooks, torch.distributions, torch.utils.checkpoint, autocast), and torchinfo's test models where they
cover the case (see torchinfo_models.py).
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize, prune

from . import register

DOCS = "PyTorch docs: {}"


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    ).eval()  # fmt: skip


class _SmallCNN(nn.Module):
    """A CNN with a user-defined forward (so functional ops between layers are steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc = nn.Linear(16 * 3 * 3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(torch.flatten(x, 1))


IMG = (2, 3, 10, 10)

# -- TorchScript -------------------------------------------------------------------------------------


@register(
    "hard_jit_script", tags="hard jit", source=DOCS.format("torch.jit.script") + " of a whole CNN",
)  # fmt: skip
def hard_jit_script():
    return torch.jit.script(_SmallCNN().eval()), (torch.randn(*IMG),), {}


@register(
    "hard_jit_trace", tags="hard jit", source=DOCS.format("torch.jit.trace") + " of a whole CNN",
    meta_nbdebug_error="issue 16 defect 3: a jit.trace'd model on meta gets a clear NbdebugError",
)  # fmt: skip
def hard_jit_trace():
    x = torch.randn(*IMG)
    return torch.jit.trace(_SmallCNN().eval(), x), (x,), {}


class _WithScripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.jit.trace(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()), torch.randn(*IMG))
        self.head = torch.jit.script(nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


@register(
    "hard_jit_inside", tags="hard jit",
    source=DOCS.format("torch.jit.trace / torch.jit.script") + ": a traced and a scripted submodule",
    meta_nbdebug_error="issue 16 defect 3: the jit.trace'd submodule cannot run on meta (its graph fixes "
    "the devices of the tensors it creates), so the meta trace says so, naming it, before anything runs",
)  # fmt: skip
def hard_jit_inside():
    return _WithScripted().eval(), (torch.randn(*IMG),), {}


# -- torch.compile -----------------------------------------------------------------------------------


@register(
    "hard_torch_compile", tags="hard compile slow",
    source=DOCS.format("torch.compile") + " with backend='eager' (dynamo only: the default inductor "
    "backend compiles C++ for ~45 s on a cold 2-core machine; the defect is dynamo's)",
)  # fmt: skip
def hard_torch_compile():
    return torch.compile(_SmallCNN().eval(), backend="eager"), (torch.randn(*IMG),), {}


# -- lazy modules ------------------------------------------------------------------------------------


@register(
    "hard_lazy_modules", tags="hard lazy",
    source=DOCS.format("torch.nn.modules.lazy.LazyModuleMixin") + ": LazyConv2d, LazyBatchNorm2d, LazyLinear",
)  # fmt: skip
def hard_lazy_modules():
    model = nn.Sequential(
        nn.LazyConv2d(8, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4)
    ).eval()
    return model, (torch.randn(*IMG),), {}


# -- pruning and parametrizations ----------------------------------------------------------------------


@register(
    "hard_pruned_issue", tags="hard pruning", source="issue 16 defect 2 reproduction (prune.l1_unstructured)",
)  # fmt: skip
def hard_pruned_issue():
    layer = nn.Linear(4, 2)
    prune.l1_unstructured(layer, "weight", 0.5)
    return layer, (torch.randn(3, 4),), {}


@register(
    "hard_pruned_cnn", tags="hard pruning",
    source=DOCS.format("torch.nn.utils.prune") + ": l1_unstructured, random_structured, global_unstructured, "
    "ln_structured on a CNN's convs and Linear (as torchinfo's test_pruning does)",
)  # fmt: skip
def hard_pruned_cnn():
    model = _SmallCNN()
    prune.l1_unstructured(model.conv1, "weight", 0.3)
    prune.random_structured(model.conv2, "weight", amount=0.25, dim=0)
    prune.ln_structured(model.fc, "weight", amount=0.5, n=2, dim=1)
    prune.global_unstructured([(model.conv1, "bias"), (model.fc, "bias")], prune.L1Unstructured, amount=0.2)
    return model, (torch.randn(*IMG),), {}


@register(
    "hard_weight_norm",
    tags="hard parametrization",
    source=DOCS.format("torch.nn.utils.parametrizations.weight_norm"),
)
def hard_weight_norm():
    model = _SmallCNN()
    parametrizations.weight_norm(model.conv1)
    parametrizations.weight_norm(model.fc, dim=None)
    return model, (torch.randn(*IMG),), {}


@register(
    "hard_weight_norm_legacy", tags="hard parametrization",
    source=DOCS.format("torch.nn.utils.weight_norm (deprecated: a forward pre-hook that sets the `weight` "
    "attribute, like pruning)"),
)  # fmt: skip
def hard_weight_norm_legacy():
    import warnings

    model = _SmallCNN()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        nn.utils.weight_norm(model.conv2)
    return model, (torch.randn(*IMG),), {}


@register(
    "hard_spectral_norm_train", tags="hard parametrization train",
    source=DOCS.format("torch.nn.utils.parametrizations.spectral_norm") + " in train mode: each forward "
    "pass runs a power iteration that updates the u/v buffers in place",
)  # fmt: skip
def hard_spectral_norm_train():
    model = _SmallCNN().train()
    parametrizations.spectral_norm(model.conv1)
    parametrizations.spectral_norm(model.fc)
    return model, (torch.randn(*IMG),), {}


@register(
    "hard_spectral_norm_legacy_train", tags="hard parametrization train",
    source=DOCS.format("torch.nn.utils.spectral_norm (the hook-based version)") + " in train mode",
)  # fmt: skip
def hard_spectral_norm_legacy_train():
    model = _SmallCNN().train()
    nn.utils.spectral_norm(model.conv2)
    return model, (torch.randn(*IMG),), {}


class _Symmetric(nn.Module):
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return X.triu() + X.triu(1).transpose(-1, -2)


@register(
    "hard_orthogonal_and_custom_parametrization", tags="hard parametrization",
    source=DOCS.format("parametrizations.orthogonal and parametrize.register_parametrization") + " (the "
    "tutorial's Symmetric)",
)  # fmt: skip
def hard_orthogonal_and_custom_parametrization():
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Linear(8, 3))
    parametrizations.orthogonal(model[0])
    parametrize.register_parametrization(model[2], "weight", _Symmetric())
    return model, (torch.randn(2, 8),), {}


# -- shared and tied -----------------------------------------------------------------------------------


@register(
    "hard_shared_module_issue", tags="hard shared",
    source="issue 16 defect 1 reproduction: nn.Sequential(lin, nn.ReLU(), lin)",
)  # fmt: skip
def hard_shared_module_issue():
    lin = nn.Linear(10, 10)
    return nn.Sequential(lin, nn.ReLU(), lin), (torch.randn(2, 10),), {}


class _SharedAndTied(nn.Module):
    """A shared block under two names, plus an encoder/decoder weight tie with its own bias."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(16, 16), nn.GELU())
        self.encoder = nn.ModuleDict({"a": self.block, "b": nn.Linear(16, 16)})
        self.decoder = nn.Linear(16, 16)
        self.decoder.weight = self.encoder["b"].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder["a"](x)
        x = self.block(x)
        return self.decoder(self.encoder["b"](x))


@register(
    "hard_shared_block_and_tied", tags="hard shared tied",
    source="a block registered under two names (self.block and encoder.a) and a tied Linear weight",
)  # fmt: skip
def hard_shared_block_and_tied():
    return _SharedAndTied(), (torch.randn(2, 16),), {}


# -- user hooks already registered ---------------------------------------------------------------------


_HOOK_CALLS: list[str] = []


def _scale_output(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    _HOOK_CALLS.append("forward")
    return output * 2


def _pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    _HOOK_CALLS.append("pre")
    return (args[0] + 1,), kwargs


def _always(module: nn.Module, args: Any, output: Any) -> None:
    _HOOK_CALLS.append("always")


def _backward_hook(module: nn.Module, grad_input: Any, grad_output: Any) -> None:
    _HOOK_CALLS.append("backward")


def _param_hook(grad: torch.Tensor) -> torch.Tensor:
    return grad * 0.5


def _post_accumulate(p: torch.Tensor) -> None:
    _HOOK_CALLS.append("post_accumulate")


def _state_dict_hook(module, state_dict, prefix, local_metadata):
    return None


@register(
    "hard_user_hooks", tags="hard hooks",
    source=DOCS.format("nn.Module.register_forward_hook / _pre_hook(with_kwargs) / always_call / "
    "register_full_backward_hook / Tensor.register_hook / register_post_accumulate_grad_hook / "
    "register_state_dict_post_hook") + "; the hooks change the data, so they must keep running",
)  # fmt: skip
def hard_user_hooks():
    model = _SmallCNN()
    model.conv1.register_forward_hook(_scale_output)
    model.conv2.register_forward_pre_hook(_pre_hook, with_kwargs=True)
    model.fc.register_forward_hook(_always, always_call=True)
    model.register_full_backward_hook(_backward_hook)
    model.fc.weight.register_hook(_param_hook)
    model.conv1.weight.register_post_accumulate_grad_hook(_post_accumulate)
    model.register_state_dict_post_hook(_state_dict_hook)
    return model, (torch.randn(*IMG),), {}


# -- structured inputs and outputs -----------------------------------------------------------------------


@dataclasses.dataclass
class Batch:
    image: torch.Tensor
    tokens: torch.Tensor
    meta: dict[str, Any]


@dataclasses.dataclass
class Prediction:
    logits: torch.Tensor
    embedding: torch.Tensor
    extras: tuple


Pair = namedtuple("Pair", ["left", "right"])


class _Structured(nn.Module):
    """Dataclass, namedtuple and dict in and out."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = _small_cnn()
        self.emb = nn.EmbeddingBag(20, 4)
        self.mix = nn.Linear(8, 4)

    def forward(self, batch: Batch, pair: Pair, options: dict[str, torch.Tensor]) -> dict[str, Any]:
        a = self.cnn(batch.image)
        b = self.emb(batch.tokens)
        z = self.mix(torch.cat([a, b], 1)) * options["scale"]
        pred = Prediction(logits=z, embedding=a, extras=(b, Pair(pair.left + 1, pair.right.sum(1))))
        return {"prediction": pred, "pairs": [Pair(z, z.T)], "name": batch.meta["name"]}


@register(
    "hard_structured_io", tags="hard dataclass namedtuple dict_input dict_output",
    source="dataclass / namedtuple / dict inputs and outputs",
)  # fmt: skip
def hard_structured_io():
    batch = Batch(torch.randn(*IMG), torch.randint(0, 20, (2, 5)), {"name": "b0"})
    pair = Pair(torch.randn(2, 3), torch.randn(2, 3))
    return _Structured(), (batch, pair, {"scale": torch.tensor(0.5)}), {}


class _Deep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor):
        y = self.lin(x)
        out: Any = y
        for i in range(8):  # 8 containers deep: dict / list / tuple alternating
            out = {"level": out} if i % 3 == 0 else [out, y[:, :i]] if i % 3 == 1 else (out,)
        return out


@register(
    "hard_nested_8_deep", tags="hard nested_output",
    source="an output nested 8 containers deep (issue 16 defect 9)",
)  # fmt: skip
def hard_nested_8_deep():
    return _Deep(), (torch.randn(2, 4),), {}


class Detections:
    """A plain result object, as detection libraries return."""

    def __init__(self, boxes: torch.Tensor, scores: torch.Tensor) -> None:
        self.boxes = boxes
        self.scores = scores


class _Detector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = _small_cnn()
        self.box = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> Detections:
        f = self.backbone(x)
        return Detections(self.box(f).view(-1, 2, 4), f.softmax(-1))


@register(
    "hard_plain_object_output", tags="hard plain_object",
    source="a model returning a plain object holding tensors (issue 16 defect 9)",
)  # fmt: skip
def hard_plain_object_output():
    return _Detector(), (torch.randn(*IMG),), {}


class _Policy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
        self.mu = nn.Linear(16, 3)
        self.log_std = nn.Parameter(torch.zeros(3))

    def forward(self, obs: torch.Tensor):
        h = self.body(obs)
        return torch.distributions.Independent(torch.distributions.Normal(self.mu(h), self.log_std.exp()), 1)


@register(
    "hard_distribution_output", tags="hard distribution",
    source="an RL policy returning torch.distributions.Independent(Normal) (issue 16 defect 9)",
)  # fmt: skip
def hard_distribution_output():
    return _Policy(), (torch.randn(2, 6),), {}


class _Factories(nn.Module):
    """Tensors made in forward without a device: what a meta walk has to put on meta itself."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 8)
        self.proj = nn.Linear(8, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        t = ids.shape[1]
        pos = torch.arange(t)  # no device=
        causal = torch.ones(t, t).tril()  # no device=
        h = self.emb(ids) + self.emb(pos)
        h = h * torch.ones(h.shape[-1])  # no device=: a CPU tensor next to meta ones
        return self.proj(causal @ h)


@register(
    "hard_factory_without_device", tags="hard factory",
    source="torch.arange / torch.ones without device= in forward (issue 16 defect 9)",
)  # fmt: skip
def hard_factory_without_device():
    return _Factories(), (torch.randint(0, 16, (2, 5)),), {}


# -- exceptions inside forward -----------------------------------------------------------------------


class _CatchesConv(nn.Module):
    """issue 16 defect 6, verbatim."""

    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 4, 3)
        s.fc = nn.Linear(12, 2)

    def forward(s, x):
        try:
            x = s.conv(x)
        except RuntimeError:
            x = x.repeat(1, 3, 1, 1)
        return s.fc(torch.flatten(x, 1)[:, :12])


@register(
    "hard_caught_exception", tags="hard exception",
    source="issue 16 defect 6 reproduction: a layer's error caught inside forward",
)  # fmt: skip
def hard_caught_exception():
    return _CatchesConv(), (torch.randn(2, 1, 2, 2),), {}


class _StaleFailure(nn.Module):
    """issue 16 defect 7: a caught view error, then a real failure in `head`."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            x.view(3, -1)
        except RuntimeError:
            pass
        return self.head(x)


@register(
    "hard_stale_failure", tags="hard exception raises",
    source="issue 16 defect 7 reproduction: the real failure is in head", raises_at="head",
)  # fmt: skip
def hard_stale_failure():
    return _StaleFailure(), (torch.randn(2, 5),), {}


# -- precision, memory format, other runtimes ---------------------------------------------------------


@register(
    "hard_half",
    tags="hard dtype",
    source="model.half() with float16 inputs (torchinfo half_precision_test, on CPU)",
)
def hard_half():
    return _SmallCNN().half(), (torch.randn(*IMG, dtype=torch.float16),), {}


@register(
    "hard_bfloat16", tags="hard dtype batchnorm", source="model.to(torch.bfloat16) with bfloat16 inputs"
)
def hard_bfloat16():
    return _small_cnn().to(torch.bfloat16), (torch.randn(*IMG, dtype=torch.bfloat16),), {}


class _Autocast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cnn = _SmallCNN()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.cnn(x)
        return y.float()


@register(
    "hard_autocast_inside",
    tags="hard dtype",
    source=DOCS.format("torch.autocast('cpu', bfloat16)") + " inside forward",
)
def hard_autocast_inside():
    return _Autocast(), (torch.randn(*IMG),), {}


@register(
    "hard_channels_last",
    tags="hard memory_format",
    source=DOCS.format("channels_last memory format") + " model and input",
)
def hard_channels_last():
    model = _small_cnn().to(memory_format=torch.channels_last)
    return model, (torch.randn(*IMG).to(memory_format=torch.channels_last),), {}


class _Checkpointed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.1))
        self.c = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        x = checkpoint(self.a, x, use_reentrant=False)
        x = checkpoint(self.b, x, use_reentrant=False)
        return self.c(x)


@register(
    "hard_checkpoint_train", tags="hard train",
    source=DOCS.format("torch.utils.checkpoint (use_reentrant=False)") + " in train mode, dropout inside",
)  # fmt: skip
def hard_checkpoint_train():
    return _Checkpointed().train(), (torch.randn(2, 8),), {}


class SpectralConv1d(nn.Module):
    """The Fourier layer of neuraloperator's FNO (complex weights, rfft/irfft), re-written and scaled down."""

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.modes = modes
        scale = 1 / (in_channels * out_channels)
        self.weights = nn.Parameter(scale * torch.rand(in_channels, out_channels, modes, dtype=torch.cfloat))
        self.w = nn.Conv1d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_ft = torch.fft.rfft(x)
        out_ft = torch.zeros(x.shape[0], self.weights.shape[1], x.shape[-1] // 2 + 1, dtype=torch.cfloat,
                             device=x.device)  # fmt: skip
        out_ft[:, :, : self.modes] = torch.einsum("bix,iox->box", x_ft[:, :, : self.modes], self.weights)
        return F.gelu(torch.fft.irfft(out_ft, n=x.size(-1)) + self.w(x))


@register(
    "hard_complex_fft",
    tags="hard complex",
    source="neuraloperator FNO SpectralConv1d (zongyi-li/fourier_neural_operator fourier_1d.py), re-written",
)
def hard_complex_fft():
    return nn.Sequential(SpectralConv1d(4, 8, 5), SpectralConv1d(8, 4, 5)), (torch.randn(2, 4, 16),), {}


class _CountsCalls(nn.Module):
    """A model that keeps a step counter in a buffer and a non-persistent buffer (both written in forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("ema", torch.zeros(4), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        y = self.lin(x)
        self.ema.mul_(0.9).add_(0.1 * y.detach().mean(0))
        return y


@register(
    "hard_buffers_written_in_forward",
    tags="hard buffers",
    source="buffers updated in place by forward (a counter, an EMA)",
)
def hard_buffers_written_in_forward():
    return _CountsCalls(), (torch.randn(2, 4),), {}


@register(
    "hard_data_parallel_cpu", tags="hard wrapper",
    source=DOCS.format("nn.DataParallel") + " on a CPU-only machine (it just calls the module)",
)  # fmt: skip
def hard_data_parallel_cpu():
    return nn.DataParallel(_SmallCNN()), (torch.randn(*IMG),), {}


class _Branchy(nn.Module):
    """Control flow on a tensor's value (.item()): real runs decide, meta cannot."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if h.sum().item() > -1e9:
            return self.b(h)
        return h


@register(
    "hard_value_dependent", tags="hard data_dependent",
    source="data-dependent control flow (`if h.sum().item() > ...`)",
    meta_unsupported="the forward pass branches on a tensor's value (.item()), which meta tensors do not have",
)  # fmt: skip
def hard_value_dependent():
    return _Branchy(), (torch.randn(2, 4),), {}
