"""A speechbrain-style Brain whose compute_objectives returns Variable(loss, requires_grad=True).

Source: speechbrain/speechbrain issue #735, "element 0 of tensors does not require grad and does not
have a grad_fn" https://github.com/speechbrain/speechbrain/issues/735
Reported: "i see your toturial compute_objectives no need loss=Variable(loss,requires_grad=True) but I
did this need write loss=Variable(loss,requires_grad=True)". Wrapping the loss in a new Variable makes a
fresh leaf: it has no history, so loss.backward() reaches no parameter and the classifier never trains;
the tutorial's compute_objectives returns the loss itself. Scaled down: the tutorial's fit loop (forward,
objectives, backward, step, zero_grad per batch) with a small classifier over precomputed features (the
digits' pixels stand in for the filterbank features), Adam 1e-3 as in the tutorial's hparams.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd import Variable

from ...data import accuracy, digits, loader, split
from ...harness import case


class Brain:
    """The parts of speechbrain.Brain the tutorial's training uses."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, rewrap: bool) -> None:
        self.model, self.optimizer, self.rewrap = model, opt, rewrap

    def compute_forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"predict": self.model(feats)}

    def compute_objectives(self, predictions: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.nll_loss(torch.log_softmax(predictions["predict"], dim=-1), labels)
        if self.rewrap:
            loss = Variable(loss, requires_grad=True)
        return loss

    def fit_batch(self, feats: torch.Tensor, labels: torch.Tensor) -> float:
        outputs = self.compute_forward(feats)
        loss = self.compute_objectives(outputs, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return loss.detach().item()


@case(
    name="loss-rewrapped-in-variable-speechbrain",
    source="https://github.com/speechbrain/speechbrain/issues/735",
    title="compute_objectives returns Variable(loss, requires_grad=True): a new leaf, no gradient reaches the model",
    expect="no-grad",
    verify=lambda bug, fixed: bug["val_acc"] < 0.2 and fixed["val_acc"] > 0.9,
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    model = nn.Sequential(
        nn.Linear(64, 128), nn.LeakyReLU(), nn.Linear(128, 128), nn.LeakyReLU(), nn.Linear(128, 10)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    brain = Brain(model, optimizer, rewrap=bug)
    with nb.watch(model, optimizer):
        for _epoch in range(3):
            model.train()
            for feats, labels in loader(xt, yt, batch_size=32):
                brain.fit_batch(feats, labels)
    return {"val_acc": accuracy(model, xv, yv)}
