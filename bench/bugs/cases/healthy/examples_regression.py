"""pytorch/examples regression: fit y = W x + b on the polynomial features [x, x^2, x^3, x^4] of x ~ N(0, 1)
with a single nn.Linear, a fresh random batch of 32 every step, F.smooth_l1_loss, `fc.zero_grad()`, and the
hand-written update `param.data.add_(-0.1 * param.grad)`, until the loss drops below 1e-3.

Source: https://github.com/pytorch/examples/blob/main/regression/main.py
The example prints "Loss: 0.000... after N batches" and the learned polynomial next to the true one. The
feature x^4 of a standard normal is heavy-tailed (kurtosis in the hundreds), so batches differ a lot and
the loss jumps from batch to batch on the way down.
Nothing is scaled (a cap of 20000 batches guards the open-ended loop). No optimizer: a user watches it
with `nbdebug.watch(fc)`.
"""

from __future__ import annotations

from itertools import count

import torch
import torch.nn.functional as F

from ...harness import case

POLY_DEGREE = 4


@case(
    name="healthy-ex-regression-fresh-heavy-tailed-batches",
    source="https://github.com/pytorch/examples/blob/main/regression/main.py",
    title="Linear regression on x..x^4 of fresh N(0,1) batches (heavy-tailed), smooth L1, update by hand",
    healthy=True,
    verify=lambda m: m["loss"] < 1e-3 and m["max_coef_err"] < 0.5,
    quick=True,
    category="pytorch-examples",
)
def program(bug: bool, nb) -> dict[str, float]:
    W_target = torch.randn(POLY_DEGREE, 1) * 5
    b_target = torch.randn(1) * 5

    def make_features(x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)

    def f(x: torch.Tensor) -> torch.Tensor:
        return x.mm(W_target) + b_target.item()

    def get_batch(batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        random = torch.randn(batch_size)
        x = make_features(random)
        return x, f(x)

    fc = torch.nn.Linear(W_target.size(0), 1)
    with nb.watch(fc):
        for batch_idx in count(1):
            batch_x, batch_y = get_batch()
            fc.zero_grad()
            output = F.smooth_l1_loss(fc(batch_x), batch_y)
            loss = output.item()
            output.backward()
            for param in fc.parameters():
                param.data.add_(-0.1 * param.grad)
            if loss < 1e-3 or batch_idx >= 20000:
                break
    err = max((fc.weight.view(-1) - W_target.view(-1)).abs().max().item(), (fc.bias - b_target).abs().item())
    return {"loss": loss, "batches": float(batch_idx), "max_coef_err": err}
