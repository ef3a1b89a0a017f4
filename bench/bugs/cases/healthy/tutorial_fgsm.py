"""Adversarial Example Generation (FGSM): the LeNet-style MNIST Net (conv 10/20 with Dropout2d, fc 320-50-10,
log_softmax) is trained with pytorch/examples/mnist's recipe (Adadelta lr=1.0, StepLR gamma 0.7 per epoch,
nll_loss; the tutorial downloads a model trained that way), then attacked: `model.eval()`, a test loader of
batch size 1, `data.requires_grad = True`, `nll_loss`, `model.zero_grad()`, `loss.backward()`,
`data.grad.data.sign()`, re-classify; no optimizer step.

Source: https://github.com/pytorch/tutorials/blob/main/beginner_source/fgsm_tutorial.py
The tutorial reports test accuracy falling as epsilon grows (98% at 0 down to ~9% at 0.3): the backward passes
in the attack compute input gradients, they do not train. A user runs both cells under watch: the training
cell as `nbdebug.watch(model, optimizer)`, the attack cell as `nbdebug.watch(model)`. Scaled: digits resized
to 28x28 in [0, 1] instead of MNIST; 5 training epochs of 22 batches; the attack runs on 120 test images at
epsilons 0, 0.1, 0.2, 0.3 instead of 10000 images at seven epsilons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import loader, split
from ...harness import case
from ._common import resized_digits


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def fgsm_attack(image: torch.Tensor, epsilon: float, data_grad: torch.Tensor) -> torch.Tensor:
    sign_data_grad = data_grad.sign()
    perturbed_image = image + epsilon * sign_data_grad
    return torch.clamp(perturbed_image, 0, 1)


@case(
    name="healthy-tut-fgsm-input-gradients",
    source="https://github.com/pytorch/tutorials/blob/main/beginner_source/fgsm_tutorial.py",
    title="FGSM attack after training: eval mode, zero_grad, backward to the input image, no optimizer step",
    healthy=True,
    verify=lambda m: m["acc_eps0"] > 0.85 and m["acc_eps0.3"] < m["acc_eps0"] - 0.3,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*resized_digits(28, unit=True))
    train_loader = loader(xt, yt, batch_size=64, shuffle=True)
    model = Net()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train()
            for data, target in train_loader:
                optimizer.zero_grad()
                output = model(data)
                loss = F.nll_loss(output, target)
                loss.backward()
                optimizer.step()
            scheduler.step()

    test_loader = loader(xv[:120], yv[:120], batch_size=1, shuffle=True)
    model.eval()

    def test(model: nn.Module, test_loader, epsilon: float) -> float:
        correct = 0
        for data, target in test_loader:
            data.requires_grad = True
            output = model(data)
            init_pred = output.max(1, keepdim=True)[1]
            if init_pred.item() != target.item():
                continue
            loss = F.nll_loss(output, target)
            model.zero_grad()
            loss.backward()
            data_grad = data.grad.data
            perturbed_data = fgsm_attack(data, epsilon, data_grad)
            output = model(perturbed_data)
            final_pred = output.max(1, keepdim=True)[1]
            if final_pred.item() == target.item():
                correct += 1
        return correct / float(len(test_loader))

    accuracies = {}
    with nb.watch(model):
        for eps in [0, 0.1, 0.2, 0.3]:
            accuracies[f"acc_eps{eps}"] = test(model, test_loader, eps)
    return accuracies
