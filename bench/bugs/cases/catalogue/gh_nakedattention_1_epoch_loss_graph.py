"""NakedAttention's MNIST script accumulating `e_train += e_batch/len(loader_train)` without detaching.

Source: jostmey/NakedAttention issue #1, "Memory issues caused by += with pytorch graph objects"
https://github.com/jostmey/NakedAttention/issues/1
Reported: "I tried running your code in a Kaggle notebook, but quickly ran out of RAM ... you are
effectively building a computational graph that gets bigger every time you run `e_train += e_batch`".
Fix (merged): `e_train += e_batch.detach()/len(loader_train)`. The program is the repo's
model_and_script.py: the SelfAttentionModel (K, Q, V as num_inputs x num_inputs parameters, one sample at
a time), Adam(lr=0.01), batch 16 from a RandomSampler with replacement, the same accumulation; the 8x8
digits replace MNIST (num_inputs=64), 2 epochs; nbdebug.memory is run on the script's variables after.
"""

from __future__ import annotations

import torch

from ...data import digits, split
from ...harness import case
from ._common import graph_nodes


class SelfAttentionModel(torch.nn.Module):
    def __init__(self, num_inputs: int, num_channels: int, num_outputs: int) -> None:
        super().__init__()
        self.K = torch.nn.Parameter((2.0 * torch.rand(num_inputs, num_inputs) - 1.0) / num_inputs**0.5)
        self.Q = torch.nn.Parameter((2.0 * torch.rand(num_inputs, num_inputs) - 1.0) / num_inputs**0.5)
        self.V = torch.nn.Parameter((2.0 * torch.rand(num_inputs, num_inputs) - 1.0) / num_inputs**0.5)
        self.softmax = torch.nn.Softmax(dim=1)
        self.out = torch.nn.Linear(num_inputs * num_channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size, num_inputs, num_channels = x.shape
        y = []
        for i in range(batch_size):
            x_i = x[i, :, :]
            x_k_i = torch.matmul(self.K, x_i)
            x_q_i = torch.matmul(self.Q, x_i)
            x_v_i = torch.matmul(self.V, x_i)
            w_i = self.softmax(torch.matmul(x_q_i, x_k_i.T) / num_inputs**0.5)
            y.append(torch.matmul(w_i, x_v_i))
        y_flat = torch.stack(y, dim=0).reshape([batch_size, num_inputs * num_channels])
        return self.out(y_flat)


@case(
    name="epoch-loss-keeps-graph-naked-attention",
    source="https://github.com/jostmey/NakedAttention/issues/1",
    title="self-attention MNIST script accumulating e_train += e_batch / len(loader): the graphs pile up",
    expect="graph-retained",
    verify=lambda bug, fixed: bug["graph_nodes"] > 100 and fixed["graph_nodes"] == 0,
    category="memory",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits())
    xs_train, xs_val = xt[:, :, None], xv[:, :, None]
    model = SelfAttentionModel(num_inputs=64, num_channels=1, num_outputs=10)
    probability = torch.nn.Softmax(dim=1)
    loss = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    dataset_train = torch.utils.data.TensorDataset(xs_train, yt)
    sampler_train = torch.utils.data.RandomSampler(dataset_train, replacement=True)
    loader_train = torch.utils.data.DataLoader(
        dataset_train, batch_size=16, sampler=sampler_train, drop_last=True
    )
    with nb.watch(model, optimizer):
        for _i in range(2):
            model.train()
            e_train = 0.0
            a_train = 0.0
            for xs_batch, ys_batch in iter(loader_train):
                ls_batch = model(xs_batch)
                ps_batch = probability(ls_batch)
                e_batch = loss(ls_batch, ys_batch)
                a_batch = (ps_batch.argmax(1) == ys_batch).float().mean().detach()
                optimizer.zero_grad()
                e_batch.backward()
                optimizer.step()
                e_train += (e_batch if bug else e_batch.detach()) / len(loader_train)
                a_train += a_batch / len(loader_train)
    nb.memory(namespace={"model": model, "optimizer": optimizer, "e_train": e_train, "a_train": a_train})
    model.eval()
    with torch.no_grad():
        a_val = (model(xs_val).argmax(1) == yv).float().mean().item()
    return {"graph_nodes": float(graph_nodes(e_train)), "a_val": a_val}
