"""Dive into Deep Learning 9.6, Concise Implementation of Recurrent Neural Networks: a character-level
language model, RNNLM around nn.RNN(len(vocab), 32) on one-hot characters, cross-entropy over every
position, SGD lr=1 built inside trainer.fit, d2l.Trainer(gradient_clip_val=1) (d2l's own norm clipping
under torch.no_grad()), TimeMachine(batch_size=1024, num_steps=32), validation each epoch.

Source: https://github.com/d2l-ai/d2l-en/blob/master/chapter_recurrent-neural-networks/rnn-concise.md
The book reports the perplexity falling from ~28 (uniform over the vocabulary) to ~8 and flattening:
character frequencies are Zipf-like and the loss plateaus early, as a character model's does.
Scaled: made-up lower-case words with Zipf-like frequencies instead of The Time Machine; 4096 training
windows (4 batches) instead of 10000; 15 epochs instead of 100. A user watches the model around
`trainer.fit`.
"""

from __future__ import annotations

import math

from torch import nn

from ...harness import case
from ._common import RNNLM, D2LTrainer, char_text, mean, tensor_loader, time_machine_tensors


class RNN(nn.Module):
    def __init__(self, num_inputs: int, num_hiddens: int) -> None:
        super().__init__()
        self.num_hiddens = num_hiddens
        self.rnn = nn.RNN(num_inputs, num_hiddens)

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)


@case(
    name="healthy-d2l-rnn-lm-clip",
    source="https://github.com/d2l-ai/d2l-en/blob/master/chapter_recurrent-neural-networks/rnn-concise.md",
    title="d2l char-level RNN language model, SGD lr=1 with gradient clipping at 1, batch 1024 windows",
    healthy=True,
    verify=lambda m: m["val_ppl"] < 0.6 * m["vocab"] and m["val_ppl"] < 12,
    category="d2l",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv), vocab = time_machine_tensors(char_text(6000, seed=3), 32, 4096, 1024)
    rnn = RNN(num_inputs=vocab, num_hiddens=32)
    model = RNNLM(rnn, vocab_size=vocab, lr=1)
    trainer = D2LTrainer(max_epochs=15, gradient_clip_val=1)
    with nb.watch(model):
        trainer.fit(model, tensor_loader((xt, yt), 1024, True), tensor_loader((xv, yv), 1024, False))
    return {"val_ppl": math.exp(mean(model.val_losses)), "vocab": float(vocab)}
