"""Dive into Deep Learning 10.2, Gated Recurrent Units (concise implementation): RNNLM around
nn.GRU(len(vocab), 32) on one-hot characters, SGD lr=4 built inside trainer.fit,
d2l.Trainer(gradient_clip_val=1), TimeMachine(batch_size=1024, num_steps=32), validation each epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_recurrent-modern/gru.md
The book reports perplexity ~1.1-4 after 50 epochs with lr=4: a large rate, made safe by clipping the gradient
norm to 1 at every step. Scaled: made-up lower-case words with Zipf-like frequencies instead of The Time
Machine; 4096 training windows (4 batches) instead of 10000; 12 epochs instead of 50. A user watches the model
around `trainer.fit`.
"""

from __future__ import annotations

import math

from torch import nn

from ...harness import case
from ._common import RNNLM, D2LTrainer, char_text, mean, tensor_loader, time_machine_tensors


class GRU(nn.Module):
    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int = 1, dropout: float = 0) -> None:
        super().__init__()
        self.num_hiddens = num_hiddens
        self.rnn = nn.GRU(num_inputs, num_hiddens, num_layers, dropout=dropout)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)


@case(
    name="healthy-d2l-gru-lm-lr4-clip",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_recurrent-modern/gru.md",
    title="d2l char-level GRU language model, SGD lr=4 with gradient clipping at 1",
    healthy=True,
    verify=lambda m: m["val_ppl"] < 0.5 * m["vocab"] and m["val_ppl"] < 10,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv), vocab = time_machine_tensors(char_text(6000, seed=5), 32, 4096, 1024)
    gru = GRU(num_inputs=vocab, num_hiddens=32)
    model = RNNLM(gru, vocab_size=vocab, lr=4)
    trainer = D2LTrainer(max_epochs=12, gradient_clip_val=1)
    with nb.watch(model):
        trainer.fit(model, tensor_loader((xt, yt), 1024, True), tensor_loader((xv, yv), 1024, False))
    return {"val_ppl": math.exp(mean(model.val_losses)), "vocab": float(vocab)}
