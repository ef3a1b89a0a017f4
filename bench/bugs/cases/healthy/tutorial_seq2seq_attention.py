"""NLP From Scratch: Translation with a Sequence to Sequence Network and Attention: EncoderRNN (Embedding,
Dropout, batch-first GRU) and AttnDecoderRNN (Bahdanau attention, GRU over [embedding; context], teacher
forcing on the whole target, log_softmax over MAX_LENGTH steps), padded id batches of 32 from a
RandomSampler, NLLLoss over every position, and two Adam(lr=0.001) optimizers, one for the encoder and one
for the decoder, both stepped after one backward.

Source: https://github.com/pytorch/tutorials/blob/main/intermediate_source/seq2seq_translation_tutorial.py
The tutorial reports the average loss falling steadily over 80 epochs and sensible translations. Scaled: a
made-up word-for-word "translation" (20 source words, each with its own target word, sentences of 2-4 words,
MAX_LENGTH 6) instead of French-English; hidden size 64 instead of 128; 15 epochs instead of 80. A user
watches the decoder and its optimizer, `nbdebug.watch(decoder, decoder_optimizer)`; the encoder trains
alongside.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn, optim
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from ...harness import case

SOS_token, EOS_token, MAX_LENGTH = 0, 1, 6


class EncoderRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, dropout_p: float = 0.1) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size: int, output_size: int, dropout_p: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, target_tensor=None) -> tuple:
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
        decoder_hidden = encoder_hidden
        decoder_outputs, attentions = [], []
        for i in range(MAX_LENGTH):
            decoder_output, decoder_hidden, attn_weights = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs
            )
            decoder_outputs.append(decoder_output)
            attentions.append(attn_weights)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # Teacher forcing
            else:
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()
        decoder_outputs = F.log_softmax(torch.cat(decoder_outputs, dim=1), dim=-1)
        return decoder_outputs, decoder_hidden, torch.cat(attentions, dim=1)

    def forward_step(self, input, hidden, encoder_outputs) -> tuple:
        embedded = self.dropout(self.embedding(input))
        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs)
        input_gru = torch.cat((embedded, context), dim=2)
        output, hidden = self.gru(input_gru, hidden)
        return self.out(output), hidden, attn_weights


@case(
    name="healthy-tut-seq2seq-attn-two-optimizers",
    source="https://github.com/pytorch/tutorials/blob/main/intermediate_source/seq2seq_translation_tutorial.py",
    title="GRU encoder + Bahdanau attention decoder, two Adam optimizers, NLLLoss over padded batches",
    healthy=True,
    verify=lambda m: m["last_loss"] < 0.5 * m["first_loss"] and m["greedy_word_acc"] > 0.25,
    category="pytorch-tutorials",
)
def program(bug: bool, nb) -> dict[str, float]:
    rng = random.Random(0)
    n_src = 20
    tgt_of = list(range(n_src))
    rng.shuffle(tgt_of)
    n = 640
    input_ids = torch.zeros(n, MAX_LENGTH, dtype=torch.long)
    target_ids = torch.zeros(n, MAX_LENGTH, dtype=torch.long)
    for idx in range(n):
        words = [rng.randrange(n_src) for _ in range(rng.randint(2, 4))]
        inp_ids, tgt_ids = [2 + w for w in words] + [EOS_token], [2 + tgt_of[w] for w in words] + [EOS_token]
        input_ids[idx, : len(inp_ids)] = torch.tensor(inp_ids)
        target_ids[idx, : len(tgt_ids)] = torch.tensor(tgt_ids)
    train_data = TensorDataset(input_ids[:512], target_ids[:512])
    train_dataloader = DataLoader(train_data, sampler=RandomSampler(train_data), batch_size=32)

    hidden_size = 64
    encoder = EncoderRNN(n_src + 2, hidden_size)
    decoder = AttnDecoderRNN(hidden_size, n_src + 2)
    learning_rate = 0.001
    encoder_optimizer = optim.Adam(encoder.parameters(), lr=learning_rate)
    decoder_optimizer = optim.Adam(decoder.parameters(), lr=learning_rate)
    criterion = nn.NLLLoss()

    def train_epoch(dataloader) -> float:
        total_loss = 0.0
        for data in dataloader:
            input_tensor, target_tensor = data
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), target_tensor.view(-1))
            loss.backward()
            encoder_optimizer.step()
            decoder_optimizer.step()
            total_loss += loss.item()
        return total_loss / len(dataloader)

    epoch_losses = []
    with nb.watch(decoder, decoder_optimizer):
        for _epoch in range(1, 16):
            epoch_losses.append(train_epoch(train_dataloader))
    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        enc_out, enc_hidden = encoder(input_ids[512:])
        decoded, _, _ = decoder(enc_out, enc_hidden)
        mask = target_ids[512:] > EOS_token
        acc = (decoded.argmax(-1) == target_ids[512:])[mask].float().mean().item()
    return {"first_loss": epoch_losses[0], "last_loss": epoch_losses[-1], "greedy_word_acc": acc}
