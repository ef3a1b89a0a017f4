"""pytorch/examples time_sequence_prediction: Sequence (two stacked LSTMCell(51) and a Linear head, in
double precision) learns sine waves one step ahead; the whole training set is one batch, MSELoss, and
`optim.LBFGS(seq.parameters(), lr=0.8)` stepped with a closure (zero_grad, forward, loss, backward); after
each step the test loss is computed under no_grad while predicting 1000 future values.

Source: https://github.com/pytorch/examples/blob/main/time_sequence_prediction/train.py
The example prints the loss of every closure call falling from ~0.5 to ~1e-4 over 15 steps, each LBFGS
step calling the closure up to 20 times.
Scaled: the generate_sine_wave.py recipe with N=20 waves of length L=100 instead of 100 x 1000; 3 steps
instead of 15; 100 future values instead of 1000.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn, optim

from ...harness import case


class Sequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 51)
        self.lstm2 = nn.LSTMCell(51, 51)
        self.linear = nn.Linear(51, 1)

    def forward(self, input: torch.Tensor, future: int = 0) -> torch.Tensor:
        outputs = []
        h_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 51, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 51, dtype=torch.double)
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _i in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


@case(
    name="healthy-ex-time-sequence-lbfgs",
    source="https://github.com/pytorch/examples/blob/main/time_sequence_prediction/train.py",
    title="Stacked LSTMCell sine-wave predictor in float64, full-batch LBFGS(lr=0.8) with a closure",
    healthy=True,
    verify=lambda m: m["last_loss"] < 0.1 * m["first_loss"] and m["test_loss"] < 0.1 * m["first_loss"],
    category="pytorch-examples",
)
def program(bug: bool, nb) -> dict[str, float]:
    rs = np.random.RandomState(2)
    T, L, N = 20, 100, 20
    x = np.empty((N, L), "int64")
    x[:] = np.array(range(L)) + rs.randint(-4 * T, 4 * T, N).reshape(N, 1)
    data = np.sin(x / 1.0 / T).astype("float64")
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])
    seq = Sequence()
    seq.double()
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8)
    losses: list[float] = []
    with nb.watch(seq, optimizer):
        for _i in range(3):

            def closure() -> torch.Tensor:
                optimizer.zero_grad()
                out = seq(input)
                loss = criterion(out, target)
                losses.append(loss.item())
                loss.backward()
                return loss

            optimizer.step(closure)
            with torch.no_grad():
                future = 100
                pred = seq(test_input, future=future)
                test_loss = criterion(pred[:, :-future], test_target).item()
    return {"first_loss": losses[0], "last_loss": losses[-1], "test_loss": test_loss}
