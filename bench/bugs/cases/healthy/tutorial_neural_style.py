"""Neural Transfer Using PyTorch: ContentLoss and StyleLoss (Gram matrix) modules inserted after the
convolutions of a frozen CNN, `model.eval()`, `model.requires_grad_(False)`, and `optim.LBFGS([input_img])`
stepped with a closure that clamps the image, zero_grads, runs the model, sums style (weight 1e6) and
content (weight 1) losses and calls backward; `run[0]` counts closure calls up to num_steps.

Source: https://github.com/pytorch/tutorials/blob/main/advanced_source/neural_style_tutorial.py
The tutorial prints the style loss falling from hundreds to ~1 and the content loss settling within 300
closure calls. The optimizer updates the input image, not the network: the network's parameters are
frozen, and a user watches the model (`nbdebug.watch(model)`), since the optimizer holds no parameter of
it; each closure's backward counts as a step.
Scaled: a small randomly initialised VGG-style CNN (5 convolutions) stands in for pretrained VGG19 (random
features carry style too); 32x32 images (a resized digit as content, coloured stripes as style); 80
closure calls instead of 300.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from ...harness import case
from ._common import resized_digits


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.target = target.detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input: torch.Tensor) -> torch.Tensor:
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature: torch.Tensor) -> None:
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std


def get_style_model_and_losses(cnn, mean, std, style_img, content_img, content_layers, style_layers) -> tuple:
    normalization = Normalization(mean, std)
    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")
        model.add_module(name, layer)
        if name in content_layers:
            content_loss = ContentLoss(model(content_img).detach())
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            style_loss = StyleLoss(model(style_img).detach())
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    return model[: (i + 1)], style_losses, content_losses


@case(
    name="healthy-tut-neural-style-lbfgs-image",
    source="https://github.com/pytorch/tutorials/blob/main/advanced_source/neural_style_tutorial.py",
    title="Neural style transfer: LBFGS closure optimizes the input image through a frozen CNN in eval mode",
    healthy=True,
    verify=lambda m: m["last_score"] < 0.2 * m["first_score"] and m["last_style"] < 0.1 * m["first_style"],
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
    ).eval()  # fmt: skip
    x, _y = resized_digits(32, channels=3, unit=True)
    content_img = x[3:4].clone()
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    style_img = torch.stack([0.5 + 0.5 * torch.sin((xx + k * yy) / (2 + k)) for k in range(3)]).unsqueeze(0)
    input_img = content_img.clone()
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], style_img, content_img,
        content_layers=["conv_4"], style_layers=["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"],
    )  # fmt: skip
    num_steps, style_weight, content_weight = 80, 1000000, 1
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    run, scores = [0], []
    with nb.watch(model):
        while run[0] <= num_steps:

            def closure() -> torch.Tensor:
                with torch.no_grad():
                    input_img.clamp_(0, 1)
                optimizer.zero_grad()
                model(input_img)
                style_score = content_score = 0
                for sl in style_losses:
                    style_score += sl.loss
                for cl in content_losses:
                    content_score += cl.loss
                style_score *= style_weight
                content_score *= content_weight
                loss = style_score + content_score
                loss.backward()
                run[0] += 1
                scores.append((style_score.item(), content_score.item()))
                return style_score + content_score

            optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return {
        "first_score": sum(scores[0]),
        "last_score": sum(scores[-1]),
        "first_style": scores[0][0],
        "last_style": scores[-1][0],
    }
