"""Thomas Wolf's "PyTorch gradient accumulation training loop" (the gist behind the Hugging Face post
"Training Neural Nets on Larger Batches"): `model.zero_grad()` once, then per batch `loss = loss /
accumulation_steps; loss.backward()`, and only every accumulation_steps batches `optimizer.step();
model.zero_grad()`, with an evaluation every evaluation_steps batches (when no gradient is accumulated).

Source: https://gist.github.com/thomwolf/ac7a7da6b1888c2eeac8ac8b9b05d3d3
Gradients deliberately carry over three backward passes before each step: that is the technique, not a
forgotten zero_grad(). The gist leaves the model, loss and optimizer to the reader: here the blitz CNN on
8x8 digits (two 3x3 convolutions), batch 16 with accumulation_steps = 4 (an effective batch of 64),
CrossEntropyLoss and SGD lr=0.05 momentum 0.9, 6 epochs, evaluation every 40 batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import accuracy, digits_images, loader, split
from ...harness import case


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


@case(
    name="healthy-gist-gradient-accumulation-4",
    source="https://gist.github.com/thomwolf/ac7a7da6b1888c2eeac8ac8b9b05d3d3",
    title="Gradient accumulation over 4 batches (loss / 4; step, zero_grad every 4th batch), periodic eval",
    healthy=True,
    verify=lambda m: m["val_acc"] > 0.9 and m["evals"] >= 10,
    quick=True,
    category="other",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    training_set = loader(xt, yt, batch_size=16, shuffle=True)
    model = Net()
    loss_function = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    accumulation_steps, evaluation_steps = 4, 40
    evals: list[float] = []

    def evaluate_model() -> None:
        evals.append(accuracy(model, xv, yv))  # eval mode + no_grad, then back to train mode

    with nb.watch(model, optimizer):
        for _epoch in range(6):
            model.zero_grad()
            for i, (inputs, labels) in enumerate(training_set):
                predictions = model(inputs)
                loss = loss_function(predictions, labels)
                loss = loss / accumulation_steps
                loss.backward()
                if (i + 1) % accumulation_steps == 0:
                    optimizer.step()
                    model.zero_grad()
                    if (i + 1) % evaluation_steps == 0:
                        evaluate_model()
    return {"val_acc": accuracy(model, xv, yv), "evals": float(len(evals))}
