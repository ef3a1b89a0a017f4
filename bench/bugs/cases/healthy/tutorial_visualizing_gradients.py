"""Visualizing Gradients: two MLPs of Linear -> norm -> Sigmoid blocks (3 layers of 128, one with BatchNorm1d,
one with Identity), user hooks on every leaf module (a forward hook that registers a backward hook on the
output tensor and appends its gradient), SGD lr=0.01 momentum 0.9 for each, trained side by side for 10
full-batch steps on dummy data (10 random 28x28 inputs, random labels), then the mean |gradient| per layer.

Source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/visualizing_gradients_tutorial.py
The tutorial shows the gradients of the model without BatchNorm falling towards zero in its early layers
while the BatchNorm model keeps them non-zero: a demonstration, and a short run (10 steps, tens of
gradients recorded by the user's own hooks). A user watches the BatchNorm model, `nbdebug.watch(model_bn,
optimizer_bn)`; the other model trains in the same loop.
Nothing is scaled: the program runs as written.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from ...harness import case


def fc_layer(in_size: int, out_size: int, norm_layer) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_size, out_size), norm_layer(out_size), nn.Sigmoid())


class Net(nn.Module):
    def __init__(self, in_size=28 * 28, hidden_size=128, out_size=10, num_layers=3, batchnorm=False) -> None:
        super().__init__()
        norm_layer = nn.BatchNorm1d if batchnorm else nn.Identity
        layers = [fc_layer(in_size, hidden_size, norm_layer)]
        for _i in range(num_layers - 1):
            layers.append(fc_layer(hidden_size, hidden_size, norm_layer))
        layers.append(nn.Linear(hidden_size, out_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.flatten(x, 1))


def hook_forward(module_name, grads, hook_backward):
    def hook(module, args, output):
        output.register_hook(hook_backward(module_name, grads))

    return hook


def hook_backward(module_name, grads):
    def hook(grad):
        grads.append((module_name, grad))

    return hook


def get_all_layers(model, hook_forward, hook_backward) -> tuple[dict, list]:
    layers, grads = {}, []
    for name, layer in model.named_modules():
        if any(layer.children()) is False:
            layers[layer] = name
            layer.register_forward_hook(hook_forward(name, grads, hook_backward))
    return layers, grads


@case(
    name="healthy-tut-visualizing-gradients-user-hooks",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/visualizing_gradients_tutorial.py",
    title="10 full-batch steps on dummy data under the user's own tensor hooks, BN and no-BN side by side",
    healthy=True,
    verify=lambda m: m["last_loss_bn"] < 0.7 * m["first_loss_bn"] and m["first_layer_grad_ratio"] > 2,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    x = torch.randn(10, 28, 28)
    y = torch.randint(10, (10,))
    model_bn = Net(batchnorm=True, num_layers=3)
    model_nobn = Net(batchnorm=False, num_layers=3)
    model_bn.train()
    model_nobn.train()
    optimizer_bn = optim.SGD(model_bn.parameters(), lr=0.01, momentum=0.9)
    optimizer_nobn = optim.SGD(model_nobn.parameters(), lr=0.01, momentum=0.9)
    _layers_bn, grads_bn = get_all_layers(model_bn, hook_forward, hook_backward)
    _layers_nobn, grads_nobn = get_all_layers(model_nobn, hook_forward, hook_backward)
    losses = []
    with nb.watch(model_bn, optimizer_bn):
        for _epoch in range(10):
            grads_bn.clear()
            grads_nobn.clear()
            optimizer_bn.zero_grad()
            optimizer_nobn.zero_grad()
            y_pred_bn = model_bn(x)
            y_pred_nobn = model_nobn(x)
            loss_bn = F.cross_entropy(y_pred_bn, y)
            loss_nobn = F.cross_entropy(y_pred_nobn, y)
            loss_bn.backward()
            loss_nobn.backward()
            optimizer_bn.step()
            optimizer_nobn.step()
            losses.append(loss_bn.item())
    # the first Linear's output gradient is the last one the backward pass records
    first_bn = grads_bn[-1][1].abs().mean().item()
    first_nobn = grads_nobn[-1][1].abs().mean().item()
    return {
        "first_loss_bn": losses[0],
        "last_loss_bn": losses[-1],
        "first_layer_grad_ratio": first_bn / first_nobn,
    }
