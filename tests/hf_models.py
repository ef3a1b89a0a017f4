"""Tiny Hugging Face models built from small configs (nothing is downloaded) and a synthetic token task, for
the Trainer integration tests and benchmark."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, LENGTH = 100, 16


class TokenTask(torch.utils.data.Dataset):
    """Sequences of random tokens; the label says whether the first token is in the upper half of the
    vocabulary (a task a 2-layer BERT learns in a few epochs)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, VOCAB, (n, LENGTH), generator=g)
        self.labels = (self.ids[:, 0] >= (VOCAB + 5) // 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.ids[i],
            "attention_mask": torch.ones(LENGTH, dtype=torch.long),
            "labels": self.labels[i],
        }


def bert_config(**kw):
    from transformers import BertConfig

    cfg = dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=LENGTH * 2, num_labels=2,
    )  # fmt: skip
    cfg.update(kw)
    return BertConfig(**cfg)


def tiny_bert(dead_relu: bool = False):
    """BertForSequenceClassification from a small config; `dead_relu`: ReLU feed-forward layers whose
    bias of -10 keeps every unit off."""
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(bert_config(hidden_act="relu" if dead_relu else "gelu"))
    if dead_relu:
        with torch.no_grad():
            for layer in model.bert.encoder.layer:
                layer.intermediate.dense.bias.fill_(-10.0)
    return model


class BertHead(nn.Module):
    """A BertModel with a classifier the user wrote (what a Trainer trains as well as a PreTrainedModel: it
    returns a dict with `loss`), where a bug can be planted: softmax before the cross-entropy, or the
    encoder cut off the graph (`detach`)."""

    def __init__(self, bug: str = "healthy") -> None:
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(bert_config())
        self.classifier = nn.Linear(32, 2)
        self.bug = bug

    def forward(self, input_ids, attention_mask=None, labels=None):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        if self.bug == "frozen":
            h = h.detach()
        logits = self.classifier(h)
        scores = logits.softmax(-1) if self.bug == "softmax" else logits
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(scores, labels)
        return out


def training_args(out_dir: str, lr: float, epochs: int, **kw):
    from transformers import TrainingArguments

    args = dict(
        output_dir=out_dir, learning_rate=lr, num_train_epochs=epochs, per_device_train_batch_size=16,
        per_device_eval_batch_size=64, eval_strategy="epoch", logging_strategy="steps", logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0,
    )  # fmt: skip
    args.update(kw)
    return TrainingArguments(**args)
