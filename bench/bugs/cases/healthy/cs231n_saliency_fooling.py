"""CS231n assignment 3, "Network Visualization: Saliency Maps, Class Visualization, and Fooling Images"
(PyTorch): with a trained classifier in eval mode, a saliency map is the gradient of the correct class
score with respect to the input (`X.requires_grad_()`, `scores.gather(1, y.view(-1, 1))`,
`scores.backward(torch.ones_like(scores))`, max |X.grad| over channels); a fooling image is found by
gradient ascent on the input towards a target class (`dX = learning_rate * g / g.norm()`, then
`X_fooling.grad.zero_()`), up to 100 iterations. Backward passes that never train the network.

Source: https://github.com/cs231n/cs231n.github.io/blob/master/assignments/2021/assignment3.md
The assignment expects saliency concentrated on the object and fooling images that flip the prediction
within a few dozen steps while looking unchanged. A user runs both under `nbdebug.watch(model)`, after a
short training cell watched as `nbdebug.watch(model, optimizer)`.
Scaled: the pytorch/examples MNIST CNN trained on 8x8 digits (Adadelta, 5 epochs) instead of a pretrained
SqueezeNet on ImageNet; saliency on 16 validation digits, fooling images for 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import optim

from ...data import digits_images, loader, split
from ...harness import case
from .examples_mnist import Net


def compute_saliency_maps(X: torch.Tensor, y: torch.Tensor, model) -> torch.Tensor:
    model.eval()
    X.requires_grad_()
    scores = model(X).gather(1, y.view(-1, 1)).squeeze()
    scores.backward(torch.ones_like(scores))
    saliency, _ = torch.max(X.grad.abs(), dim=1)
    return saliency


def make_fooling_image(X: torch.Tensor, target_y: int, model) -> tuple[torch.Tensor, int]:
    model.eval()
    X_fooling = X.clone()
    X_fooling = X_fooling.requires_grad_()
    learning_rate = 1
    for it in range(100):
        scores = model(X_fooling)
        if scores.argmax(1).item() == target_y:
            return X_fooling.detach(), it
        target_score = scores[0, target_y]
        target_score.backward()
        g = X_fooling.grad
        dX = learning_rate * g / g.norm()
        X_fooling.data += dX.data
        X_fooling.grad.zero_()
    return X_fooling.detach(), 100


@case(
    name="healthy-cs231n-saliency-and-fooling-images",
    source="https://github.com/cs231n/cs231n.github.io/blob/master/assignments/2021/assignment3.md",
    title="Saliency maps and fooling images: input gradients of class scores in eval mode, no optimizer",
    healthy=True,
    verify=lambda m: m["saliency_ink_ratio"] > 1.5 and m["fooled"] >= 3,
    category="other",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    train_loader = loader(xt, yt, batch_size=64, shuffle=True)
    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    with nb.watch(model, optimizer):
        for _epoch in range(5):
            model.train()
            for data, target in train_loader:
                optimizer.zero_grad()
                loss = F.nll_loss(model(data), target)
                loss.backward()
                optimizer.step()

    X, y = xv[:16].clone(), yv[:16]
    ink = X[:, 0] > X.min()
    with nb.watch(model):
        saliency = compute_saliency_maps(X, y, model)
        fooled = 0
        for i in range(4):
            target_y = int((y[i] + 1) % 10)
            _Xf, iters = make_fooling_image(xv[i : i + 1].clone(), target_y, model)
            fooled += int(iters < 100)
    ratio = (saliency[ink].mean() / saliency[~ink].mean()).item()
    return {"saliency_ink_ratio": ratio, "fooled": float(fooled)}
