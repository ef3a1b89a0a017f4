"""torchinfo's own test models, re-written from TylerYep/torchinfo `tests/fixtures/models.py` (MIT licence)
and `tests/fixtures/genotype.py`, with the inputs its `tests/torchinfo_test.py` gives them.

Class bodies follow the originals; widths marked "scaled down" are reduced (batch 2, at most 64
channels), which changes no code path. Each entry names its torchinfo class.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical, Normal
from torch.nn.utils.rnn import pack_padded_sequence

from . import register

SRC = "torchinfo tests/fixtures/models.py: {}"


class SingleInputNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.3)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@register(
    "ti_single_input_net", tags="torchinfo classic conv classifier", source=SRC.format("SingleInputNet")
)
def ti_single_input_net():
    return SingleInputNet().eval(), (torch.randn(2, 1, 28, 28),), {}


class MultipleInputNetDifferentDtypes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1a = nn.Linear(300, 50)
        self.fc1b = nn.Linear(50, 10)
        self.fc2a = nn.Linear(300, 50)
        self.fc2b = nn.Linear(50, 10)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.fc1a(x1))
        x1 = self.fc1b(x1)
        x2 = x2.type(torch.float)
        x2 = F.relu(self.fc2a(x2))
        x2 = self.fc2b(x2)
        x = torch.cat((x1, x2), 0)
        return F.log_softmax(x, dim=1)


@register(
    "ti_multiple_input_dtypes", tags="torchinfo classic", source=SRC.format("MultipleInputNetDifferentDtypes")
)
def ti_multiple_input_dtypes():
    return MultipleInputNetDifferentDtypes(), (torch.randn(2, 300), torch.randint(0, 2, (2, 300))), {}


class LSTMNet(nn.Module):
    def __init__(
        self, vocab_size: int = 20, embed_dim: int = 300, hidden_dim: int = 512, num_layers: int = 2
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.encoder = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers)
        self.decoder = nn.Linear(hidden_dim, vocab_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embed = self.embedding(x)
        out, hidden = self.encoder(embed)
        out = self.decoder(out)
        out = out.view(-1, out.size(2))
        return out, hidden


@register(
    "ti_lstm_net",
    tags="torchinfo classic rnn nested_output",
    source=SRC.format("LSTMNet") + ", scaled down",
)
def ti_lstm_net():
    return LSTMNet(embed_dim=32, hidden_dim=48), (torch.randint(0, 20, (12, 2)),), {}


class RecursiveNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(64, 64, 3, 1, 1)

    def forward(self, x: torch.Tensor, args1: Any = None, args2: Any = None) -> torch.Tensor:
        del args1, args2
        out = x
        for _ in range(3):
            out = self.conv1(out)
            out = self.conv1(out)
        return out


@register(
    "ti_recursive_net",
    tags="torchinfo classic conv shared",
    source=SRC.format("RecursiveNet") + " with its string args",
)
def ti_recursive_net():
    return RecursiveNet(), (torch.randn(2, 64, 8, 8),), {"args1": "args1", "args2": "args2"}


class SiameseNets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 10)
        self.conv2 = nn.Conv2d(16, 32, 7)
        self.conv3 = nn.Conv2d(32, 32, 4)
        self.conv4 = nn.Conv2d(32, 64, 4)
        self.pooling = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(64, 128)
        self.fc2 = nn.Linear(128, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.pooling(F.relu(self.conv1(x1)))
        x1 = self.pooling(F.relu(self.conv2(x1)))
        x1 = self.pooling(F.relu(self.conv3(x1)))
        x1 = self.pooling(F.relu(self.conv4(x1)))
        x2 = self.pooling(F.relu(self.conv1(x2)))
        x2 = self.pooling(F.relu(self.conv2(x2)))
        x2 = self.pooling(F.relu(self.conv3(x2)))
        x2 = self.pooling(F.relu(self.conv4(x2)))
        batch_size = x1.size(0)
        x1 = x1.view(batch_size, -1)
        x2 = x2.view(batch_size, -1)
        x1 = self.fc1(x1)
        x2 = self.fc1(x2)
        metric = torch.abs(x1 - x2)
        return torch.sigmoid(self.fc2(self.dropout(metric)))


@register(
    "ti_siamese_nets", tags="torchinfo classic conv shared",
    source=SRC.format("SiameseNets") + ", channels scaled down, the test's 88x88 inputs",
)  # fmt: skip
def ti_siamese_nets():
    return SiameseNets().eval(), (torch.randn(2, 1, 88, 88), torch.randn(2, 1, 88, 88)), {}


class ReturnDictLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        activation_dict = {}
        x = self.conv1(x)
        activation_dict["conv1"] = x
        x = F.relu(F.max_pool2d(x, 2))
        x = self.conv2(x)
        activation_dict["conv2"] = x
        x = F.relu(F.max_pool2d(x, 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        activation_dict["fc1"] = x
        x = self.fc2(x)
        activation_dict["fc2"] = x
        x = F.log_softmax(x, dim=1)
        activation_dict["output"] = x
        return activation_dict


class ReturnDict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.return_dict = ReturnDictLayer()

    def forward(self, x: torch.Tensor, y: Any) -> dict[str, torch.Tensor]:
        del y
        return self.return_dict(x)


@register("ti_return_dict", tags="torchinfo classic dict_output", source=SRC.format("ReturnDict"))
def ti_return_dict():
    return ReturnDict(), (torch.randn(2, 1, 28, 28), [12]), {}


class DictParameter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.constant = 5

    def forward(self, x: dict[int, torch.Tensor], scale_factor: int) -> torch.Tensor:
        return scale_factor * (x[256] + x[512][0]) * self.constant


@register(
    "ti_dict_parameter", tags="torchinfo dict_input", source=SRC.format("DictParameter") + " (int keys)"
)
def ti_dict_parameter():
    x = {256: torch.randn(10, 1), 512: [torch.randn(10, 1)]}
    return DictParameter(), (x,), {"scale_factor": 5}


class ModuleDictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.choices = nn.ModuleDict({"conv": nn.Conv2d(10, 10, 3), "pool": nn.MaxPool2d(3)})
        self.activations = nn.ModuleDict({"lrelu": nn.LeakyReLU(), "prelu": nn.PReLU()})

    def forward(self, x: torch.Tensor, layer_type: str, activation_type: str) -> torch.Tensor:
        x = self.choices[layer_type](x)
        return self.activations[activation_type](x)


@register(
    "ti_module_dict", tags="torchinfo", source=SRC.format("ModuleDictModel") + " with its string arguments"
)
def ti_module_dict():
    return ModuleDictModel(), (torch.randn(2, 10, 3, 3),), {"layer_type": "conv", "activation_type": "prelu"}


class ObjectWithTensors:
    def __init__(self, tensors: Any) -> None:
        self.tensors = tensors


class HighlyNestedDictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin1 = nn.Linear(10, 10)
        self.lin2 = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> dict[str, tuple[dict[str, list[ObjectWithTensors]]]]:
        x = self.lin1(x)
        x = self.lin2(x)
        x = F.softmax(x, dim=0)
        return {"foo": ({"bar": [ObjectWithTensors(x)]},)}


@register(
    "ti_highly_nested_dict", tags="torchinfo nested_output plain_object",
    source=SRC.format("HighlyNestedDictModel"),
)  # fmt: skip
def ti_highly_nested_dict():
    return HighlyNestedDictModel(), (torch.ones(10),), {}


class NamedTupleModel(nn.Module):
    Point = namedtuple("Point", ["x", "y"])

    def forward(self, x: Any, y: Any, z: Any) -> Any:
        return self.Point(x, y).x + torch.ones(z.x)


@register(
    "ti_namedtuple_factory", tags="torchinfo namedtuple_input factory",
    source=SRC.format("NamedTuple") + ": a namedtuple argument and torch.ones(z.x) without a device",
)  # fmt: skip
def ti_namedtuple_factory():
    z = NamedTupleModel.Point(torch.Size([2, 1, 28, 28]), torch.Size([2, 1, 28, 28]))
    return NamedTupleModel(), (torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28), z), {}


class LayerWithRidiculouslyLongNameAndDoesntDoAnything(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.identity = nn.Identity()

    def forward(self, x: Any) -> Any:
        return self.identity(x)


class EdgeCaseModel(nn.Module):
    def __init__(
        self, throw_error: bool = False, return_str: bool = False, return_class: bool = False
    ) -> None:
        super().__init__()
        self.throw_error = throw_error
        self.return_str = return_str
        self.return_class = return_class
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.model = LayerWithRidiculouslyLongNameAndDoesntDoAnything()

    def forward(self, x: torch.Tensor) -> Any:
        x = self.conv1(x)
        x = self.model("string output" if self.return_str else x)
        if self.throw_error:
            x = self.conv1(x)
        if self.return_class:
            x = self.model(EdgeCaseModel)
        return x


@register(
    "ti_edge_case_throws", tags="torchinfo raises",
    source=SRC.format("EdgeCaseModel(throw_error=True)") + ": the second conv1 call gets 10 channels",
    raises_at="conv1 (call 2)",
)  # fmt: skip
def ti_edge_case_throws():
    return EdgeCaseModel(throw_error=True), (torch.randn(2, 1, 28, 28),), {}


@register("ti_edge_case_returns_str", tags="torchinfo", source=SRC.format("EdgeCaseModel(return_str=True)"))
def ti_edge_case_returns_str():
    return EdgeCaseModel(return_str=True), (torch.randn(2, 1, 28, 28),), {}


class PackPaddedLSTM(nn.Module):
    def __init__(
        self, vocab_size: int = 60, embedding_size: int = 128, output_size: int = 18, hidden_size: int = 32
    ):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.lstm = nn.LSTM(embedding_size, self.hidden_size, num_layers=1)
        self.hidden2out = nn.Linear(self.hidden_size, output_size)
        self.dropout_layer = nn.Dropout(p=0.2)

    def forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden1 = torch.ones(1, batch.size(-1), self.hidden_size, device=batch.device)
        hidden2 = torch.ones(1, batch.size(-1), self.hidden_size, device=batch.device)
        embeds = self.embedding(batch)
        packed_input = pack_padded_sequence(embeds, lengths)
        _, (ht, _) = self.lstm(packed_input, (hidden1, hidden2))
        output = self.dropout_layer(ht[-1])
        output = self.hidden2out(output)
        return F.log_softmax(output, dim=1)


@register(
    "ti_pack_padded_lstm", tags="torchinfo rnn packed",
    source=SRC.format("PackPaddedLSTM") + ", embedding scaled down, the test's lengths (13 down to 4)",
)  # fmt: skip
def ti_pack_padded_lstm():
    lengths = torch.tensor([13, 12, 11, 9, 8, 7, 6, 5, 4])
    return PackPaddedLSTM(embedding_size=32).eval(), (torch.ones(13, 9, dtype=torch.long), lengths), {}


class ContainerChildModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._sequential = nn.Sequential(nn.Linear(5, 5), nn.Linear(5, 5))
        self._between = nn.Linear(5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._sequential(x)
        out = self._between(out)
        for layer in self._sequential:
            out = layer(out)
        out = self._sequential(x)
        for layer in self._sequential:
            out = layer(out)
        return out


class ContainerModule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._layers = nn.ModuleList()
        self._layers.append(nn.Linear(5, 5))
        self._layers.append(ContainerChildModule())
        self._layers.append(nn.Linear(5, 5))
        self._layers.append(None)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self._layers:
            if layer is not None:
                out = layer(out)
        return out


@register(
    "ti_container",
    tags="torchinfo shared",
    source=SRC.format("ContainerModule") + " (a None in a ModuleList)",
)
def ti_container():
    return ContainerModule(), (torch.randn(2, 5),), {}


class AutoEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.decode = nn.Sequential(nn.Conv2d(16, 3, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        unpooled_shape = x.size()
        x, indices = self.pool(x)
        x = self.unpool(x, indices=indices, output_size=unpooled_shape)
        return self.decode(x)


@register(
    "ti_autoencoder_unpool",
    tags="torchinfo classic conv pooling",
    source=SRC.format("AutoEncoder") + ", 32x32 input",
)
def ti_autoencoder_unpool():
    return AutoEncoder(), (torch.randn(2, 3, 32, 32),), {}


class PartialJITModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d(0.3)
        self.fc1 = torch.jit.script(nn.Linear(320, 50))
        self.fc2 = torch.jit.script(nn.Linear(50, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


@register(
    "ti_partial_jit", tags="torchinfo jit hard", source=SRC.format("PartialJITModel"),
)  # fmt: skip
def ti_partial_jit():
    return PartialJITModel().eval(), (torch.randn(2, 1, 28, 28),), {}


class MixedTrainable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fully_trainable = nn.Conv1d(1, 1, 1)
        self.partially_trainable = nn.Conv1d(1, 1, 1, bias=True)
        self.partially_trainable.bias.requires_grad = False
        self.non_trainable = nn.Conv1d(1, 1, 1, 1, bias=True)
        self.non_trainable.weight.requires_grad = False
        self.non_trainable.bias.requires_grad = False
        self.dropout = nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fully_trainable(x)
        x = self.partially_trainable(x)
        x = self.non_trainable(x)
        return self.dropout(x)


@register(
    "ti_mixed_trainable",
    tags="torchinfo requires_grad train",
    source=SRC.format("MixedTrainable") + ", train mode",
)
def ti_mixed_trainable():
    return MixedTrainable(), (torch.randn(2, 1, 10),), {}


class ReuseLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        linear = nn.Linear(10, 10)
        model = []
        for _ in range(4):
            model += [linear, nn.ReLU(True)]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register(
    "ti_reuse_linear", tags="torchinfo shared",
    source=SRC.format("ReuseLinear") + ": one Linear reachable by four paths",
)  # fmt: skip
def ti_reuse_linear():
    return ReuseLinear(), (torch.randn(2, 10),), {}


class ReuseReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        activation = nn.ReLU(True)
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(4, 1, kernel_size=1, padding=0),
            nn.BatchNorm2d(1),
            activation,
        ]
        for i in range(3):
            mult = 2**i
            model += [
                nn.Conv2d(mult, mult * 2, kernel_size=1, stride=2, padding=1),
                nn.BatchNorm2d(mult * 2),
                activation,
            ]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


@register(
    "ti_reuse_relu_train",
    tags="torchinfo shared batchnorm train",
    source=SRC.format("ReuseReLU") + ", 16x16 input, train mode",
)
def ti_reuse_relu_train():
    return ReuseReLU(), (torch.randn(2, 4, 16, 16),), {}


class SharedModuleInNestedList(nn.Module):
    class Block(nn.Module):
        def __init__(self, act: nn.Module) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
            self.act = act

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = self.act(layer(x))
            return x

    def __init__(self) -> None:
        super().__init__()
        shared_act = nn.ReLU()
        self.blocks = nn.ModuleList([SharedModuleInNestedList.Block(shared_act) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@register("ti_shared_in_nested_list", tags="torchinfo shared", source=SRC.format("SharedModuleInNestedList"))
def ti_shared_in_nested_list():
    return SharedModuleInNestedList(), (torch.randn(2, 4),), {}


class TiedWeightsModel(nn.Module):
    def __init__(self, vocab_size: int = 1000, embed_dim: int = 64) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.head = nn.Linear(embed_dim, vocab_size, bias=False)
        self.head.weight = self.embedding.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x))


@register(
    "ti_tied_weights",
    tags="torchinfo tied",
    source=SRC.format("TiedWeightsModel") + ", vocabulary scaled down",
)
def ti_tied_weights():
    return TiedWeightsModel(vocab_size=50, embed_dim=16), (torch.randint(0, 50, (2, 7)),), {}


class RegisterParameter(nn.Sequential):
    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__(*blocks)
        self.register_parameter("weights", nn.Parameter(torch.zeros(len(blocks)).to(torch.float)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, block in enumerate(self):
            x += self.weights[k] * block(x)
        return x


@register(
    "ti_register_parameter",
    tags="torchinfo inplace",
    source=SRC.format("RegisterParameter") + " (adds into its input in place)",
)
def ti_register_parameter():
    return RegisterParameter(nn.Linear(2, 2), nn.Linear(2, 2)), (torch.randn(2, 2),), {}


class ParameterFCNet(nn.Module):
    def __init__(self, input_dim: int = 128, hidden_dim: int = 64, output_dim: int | None = None) -> None:
        super().__init__()
        self.output_dim = output_dim
        self.a = nn.Parameter(torch.randn(input_dim, hidden_dim))
        self.b = nn.Parameter(torch.randn(hidden_dim))
        if output_dim is not None:
            self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.mm(x, self.a) + self.b
        if self.output_dim is None:
            return h
        return self.fc2(h)


@register("ti_parameter_fc_net", tags="torchinfo", source=SRC.format("ParameterFCNet(128, 64, 32)"))
def ti_parameter_fc_net():
    return ParameterFCNet(128, 64, 32), (torch.randn(2, 128),), {}


class RecursiveWithMissingLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.out_conv0 = nn.Conv2d(3, 8, 5, padding="same")
        self.out_bn0 = nn.BatchNorm2d(8)
        self.block0 = nn.ModuleDict()
        for i in range(1, 4):
            self.block0.add_module(f"in_conv{i}", nn.Conv2d(8, 8, 3, padding="same", dilation=2**i))
            self.block0.add_module(f"in_bn{i}", nn.BatchNorm2d(8))
        self.block1 = nn.ModuleDict()
        for i in range(4, 7):
            self.block1.add_module(f"in_conv{i}", nn.Conv2d(8, 8, 3, padding="same", dilation=2 ** (7 - i)))
            self.block1.add_module(f"in_bn{i}", nn.BatchNorm2d(8))
        self.out_conv7 = nn.Conv2d(8, 1, 1, padding="same")
        self.out_bn7 = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out_conv0(x)
        x = torch.relu(self.out_bn0(x))
        for i in range(1, 4):
            x = self.block0[f"in_conv{i}"](x)
            x = torch.relu(self.block0[f"in_bn{i}"](x))
        for i in range(4, 7):
            x = self.block1[f"in_conv{i}"](x)
            x = torch.relu(self.block1[f"in_bn{i}"](x))
        x = self.out_conv7(x)
        return torch.relu(self.out_bn7(x))


@register(
    "ti_recursive_missing_layers", tags="torchinfo conv batchnorm",
    source=SRC.format("RecursiveWithMissingLayers") + ", 32x32 input",
)  # fmt: skip
def ti_recursive_missing_layers():
    return RecursiveWithMissingLayers().eval(), (torch.randn(2, 3, 32, 32),), {}


class SimpleRNN(nn.Module):
    def __init__(self, repeat_outside_loop: bool = False) -> None:
        super().__init__()
        self.hid_dim = 2
        self.input_dim = 3
        self.max_length = 4
        self.repeat_outside_loop = repeat_outside_loop
        self.lstm = nn.LSTMCell(self.input_dim, self.hid_dim)
        self.activation = nn.Tanh()
        self.projection = nn.Linear(self.hid_dim, self.input_dim)

    def forward(self, token_embedding: torch.Tensor) -> torch.Tensor:
        b_size = token_embedding.size()[0]
        hx = torch.randn(b_size, self.hid_dim, device=token_embedding.device)
        cx = torch.randn(b_size, self.hid_dim, device=token_embedding.device)
        for _ in range(self.max_length):
            hx, cx = self.lstm(token_embedding, (hx, cx))
            hx = self.activation(hx)
        if self.repeat_outside_loop:
            hx = self.projection(hx)
            hx = self.activation(hx)
        return hx


@register(
    "ti_simple_rnn_cell",
    tags="torchinfo rnn rng",
    source=SRC.format("SimpleRNN(repeat_outside_loop=True)") + ": torch.randn in forward",
)
def ti_simple_rnn_cell():
    return SimpleRNN(repeat_outside_loop=True), (torch.randn(2, 3),), {}


class CategoricalOutputModel(nn.Module):
    def __init__(self, input_dim: int = 10, output_dim: int = 5) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)
        self.log_softmax = nn.LogSoftmax(dim=-1)

    def forward(self, x: torch.Tensor) -> Categorical:
        return Categorical(logits=self.log_softmax(self.linear(x)))


@register(
    "ti_categorical_output", tags="torchinfo distribution",
    source=SRC.format("CategoricalOutputModel"),
)  # fmt: skip
def ti_categorical_output():
    return CategoricalOutputModel(), (torch.randn(2, 10),), {}


class NormalOutputModel(nn.Module):
    def __init__(self, input_dim: int = 10, output_dim: int = 5) -> None:
        super().__init__()
        self.mean_layer = nn.Linear(input_dim, output_dim)
        self.std_layer = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> Normal:
        mean = self.mean_layer(x)
        std = F.softplus(self.std_layer(x))
        return Normal(loc=mean, scale=std)


@register(
    "ti_normal_output", tags="torchinfo distribution",
    source=SRC.format("NormalOutputModel"),
)  # fmt: skip
def ti_normal_output():
    return NormalOutputModel(), (torch.randn(2, 10),), {}


class IntWithGetitem(int):
    def __init__(self, tensor: torch.Tensor) -> None:
        super().__init__()
        self.tensor = tensor

    def __int__(self) -> IntWithGetitem:
        return self

    def __getitem__(self, val: int) -> torch.Tensor:
        return self.tensor * val


class EdgecaseInputOutputModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, input_list: dict[str, torch.Tensor]) -> dict[str, IntWithGetitem]:
        x = input_list["foo"] if input_list else torch.ones(3)
        x = self.linear(x)
        return {"foo": IntWithGetitem(x)}


@register(
    "ti_edgecase_input_output", tags="torchinfo plain_object factory",
    source=SRC.format("EdgecaseInputOutputModel") + " with an empty dict input (input_data=[{}]); the "
    "output is an int subclass holding a tensor",
    meta_unsupported="the output is an int subclass made from the tensor: int(x) reads its value",
)  # fmt: skip
def ti_edgecase_input_output():
    return EdgecaseInputOutputModel(), ({},), {}


class NumpyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, inp: np.ndarray) -> Any:
        assert isinstance(inp, np.ndarray)
        x = torch.from_numpy(inp)
        x = self.lin(x)
        return x.cpu().detach().numpy()


@register(
    "ti_numpy_io", tags="torchinfo numpy",
    source=SRC.format("NumpyModel") + ": NumPy in, NumPy out",
    meta_unsupported="the model makes its tensor with torch.from_numpy: a CPU tensor next to meta weights",
)  # fmt: skip
def ti_numpy_io():
    return NumpyModel(), (np.random.rand(2, 3).astype(np.float32),), {}


class ScalarTensorInputNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor, scalar_t: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * scalar_t


@register(
    "ti_scalar_tensor_input",
    tags="torchinfo",
    source=SRC.format("ScalarTensorInputNet") + " (a 0-d timestep tensor)",
)
def ti_scalar_tensor_input():
    return ScalarTensorInputNet(), (torch.randn(2, 10), torch.tensor(0.5)), {}


# -- torchinfo tests/fixtures/genotype.py: a DARTS cell network -----------------------------------------


class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, kernel_size=1, stride=1, padding=0, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    def __init__(self, C_in, C_out, stride, kernel_size=3, padding=1, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in, C_in, kernel_size=kernel_size, stride=stride, padding=padding, groups=C_in, bias=False
            ),
            nn.Conv2d(C_in, C_in, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(
                C_in, C_in, kernel_size=kernel_size, stride=1, padding=padding, groups=C_in, bias=False
            ),
            nn.Conv2d(C_in, C_out, kernel_size=1, padding=0, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return self.bn(out)


class Cell(nn.Module):
    def __init__(self, C_prev_prev, C_prev, C, reduction=False, reduction_prev=False):
        super().__init__()
        Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
        genotype = Genotype(
            normal=[("skip_connect", 1), ("skip_connect", 0)],
            normal_concat=range(1),
            reduce=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
            reduce_concat=range(1),
        )
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C)
        self.preprocess1 = ReLUConvBN(C_prev, C)
        if reduction:
            op_names, indices = zip(*genotype.reduce)
            concat = genotype.reduce_concat
        else:
            op_names, indices = zip(*genotype.normal)
            concat = genotype.normal_concat
        self._steps = len(op_names) // 2
        self._concat = concat
        self.multiplier = len(concat)
        self._ops = nn.ModuleList()
        for name, index in zip(op_names, indices):
            stride = 2 if reduction and index < 2 else 1
            if name == "skip_connect":
                op = (
                    LayerWithRidiculouslyLongNameAndDoesntDoAnything()
                    if stride == 1
                    else FactorizedReduce(C, C)
                )
            else:
                op = SepConv(C, C, stride)
            self._ops += [op]
        self._indices = indices

    def forward(self, s0, s1, drop_prob):
        s0 = self.preprocess0(s0)
        s1 = self.preprocess1(s1)
        states = [s0, s1]
        for i in range(self._steps):
            h1 = self._ops[2 * i](states[self._indices[2 * i]])
            h2 = self._ops[2 * i + 1](states[self._indices[2 * i + 1]])
            states += [h1 + h2]
        return torch.cat([states[i] for i in self._concat], dim=1)


class GenotypeNetwork(nn.Module):
    def __init__(self, C=16, num_classes=10, layers=1):
        super().__init__()
        self.drop_path_prob = 0.0
        C_curr = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        for i in range(layers):
            if i in (layers // 3, 2 * layers // 3):
                C_curr *= 2
            cell = Cell(C_prev_prev, C_prev, C_curr)
            self.cells += [cell]
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr

    def forward(self, input_):
        s0 = s1 = self.stem(input_)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
        return s1


@register(
    "ti_genotype_darts",
    tags="torchinfo classic conv",
    source="torchinfo tests/fixtures/genotype.py: GenotypeNetwork (DARTS cells)",
)
def ti_genotype_darts():
    return GenotypeNetwork(C=8, layers=2).eval(), (torch.randn(2, 3, 16, 16),), {}
