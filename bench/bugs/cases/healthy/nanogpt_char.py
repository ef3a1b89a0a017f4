"""karpathy/nanoGPT train.py on a character-level dataset (the shakespeare_char configuration): GPT (pre-LN
blocks, causal scaled_dot_product_attention, GELU MLP, weight tying, N(0, 0.02) init), AdamW with two
parameter groups (weight decay 0.1 on matrices, none on biases and LayerNorm gains), a learning rate set by
hand every iteration (linear warmup, then cosine decay to min_lr), `gradient_accumulation_steps`
micro-batches with the loss divided by their number, `scaler.scale(loss).backward()`, then
`scaler.unscale_(optimizer)` before `clip_grad_norm_(model.parameters(), 1.0)`, `scaler.step`,
`scaler.update`, `zero_grad(set_to_none=True)`; `estimate_loss()` in eval mode every eval_interval.

Source: https://github.com/karpathy/nanoGPT/blob/master/train.py (model: .../model.py, configuration:
.../config/train_shakespeare_char.py)
The README reports the shakespeare_char validation loss falling from ~4.2 to ~1.47; character
frequencies are Zipf-like, so the loss drops fast to the unigram entropy and then slowly.
Scaled: made-up lower-case words with Zipf-like frequencies instead of Shakespeare; n_layer=2, n_head=2,
n_embd=32, block_size=32, batch_size=16 instead of 6/6/384/256/64; 100 iterations (warmup 10) instead of
5000 (warmup 100); gradient_accumulation_steps=4 (the config uses 1, train.py's GPT-2 default is 40).
On the CPU the float16 path (autocast + an enabled GradScaler) becomes
`torch.autocast("cpu", dtype=torch.bfloat16)` with `torch.amp.GradScaler("cpu")`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from ...harness import case
from ._common import char_text


class LayerNorm(nn.Module):
    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple:
        b, t = idx.size()
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits, loss = self.lm_head(x[:, [-1], :]), None
        return logits, loss

    def configure_optimizers(
        self, weight_decay: float, learning_rate: float, betas: tuple
    ) -> torch.optim.AdamW:
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas)


@case(
    name="healthy-nanogpt-amp-accum-clip-cosine",
    source="https://github.com/karpathy/nanoGPT/blob/master/train.py",
    title="nanoGPT char model: AMP + GradScaler, clip after unscale_, 4-step accumulation, warmup + cosine",
    healthy=True,
    verify=lambda m: m["val_loss"] < m["first_val_loss"] - 0.7 and m["val_loss"] < 2.6,
    quick=True,
    category="other",
)
def program(bug: bool, nb) -> dict[str, float]:
    text = char_text(20000, seed=13)
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]
    eval_interval, eval_iters = 25, 10
    gradient_accumulation_steps, batch_size, block_size = 4, 16, 32
    learning_rate, max_iters, lr_decay_iters, min_lr, warmup_iters = 1e-3, 100, 100, 1e-4, 10
    weight_decay, beta1, beta2, grad_clip = 1e-1, 0.9, 0.99, 1.0

    def get_batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        d = train_data if split == "train" else val_data
        ix = torch.randint(len(d) - block_size, (batch_size,))
        x = torch.stack([d[i : i + block_size] for i in ix])
        y = torch.stack([d[i + 1 : i + 1 + block_size] for i in ix])
        return x, y

    model_args = dict(
        n_layer=2, n_head=2, n_embd=32, block_size=block_size, bias=False, vocab_size=len(chars), dropout=0.2
    )
    model = GPT(GPTConfig(**model_args))
    ctx = torch.autocast("cpu", dtype=torch.bfloat16)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2))

    @torch.no_grad()
    def estimate_loss() -> dict[str, float]:
        out = {}
        model.eval()
        for split in ["train", "val"]:
            losses = torch.zeros(eval_iters)
            for k in range(eval_iters):
                X, Y = get_batch(split)
                with ctx:
                    _logits, loss = model(X, Y)
                losses[k] = loss.item()
            out[split] = losses.mean().item()
        model.train()
        return out

    def get_lr(it: int) -> float:
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    val_losses = []
    X, Y = get_batch("train")
    iter_num = 0
    with nb.watch(model, optimizer):
        while True:
            lr = get_lr(iter_num)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            if iter_num % eval_interval == 0:
                val_losses.append(estimate_loss()["val"])
            for _micro_step in range(gradient_accumulation_steps):
                with ctx:
                    _logits, loss = model(X, Y)
                    loss = loss / gradient_accumulation_steps
                X, Y = get_batch("train")
                scaler.scale(loss).backward()
            if grad_clip != 0.0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            if iter_num > max_iters:
                break
    val_losses.append(estimate_loss()["val"])
    return {"first_val_loss": val_losses[0], "val_loss": val_losses[-1]}
