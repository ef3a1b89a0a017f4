"""Hugging Face LLM/NLP Course, chapter 3 "A full training loop": a pretrained sequence classifier with a new
head, DataLoader batches that are dicts of tensors (input_ids, token_type_ids, attention_mask, labels),
`outputs = model(**batch)`, `loss = outputs.loss`, AdamW lr=5e-5, get_scheduler("linear",
num_warmup_steps=0) stepped after every optimizer step, 3 epochs, then evaluation under model.eval() and
torch.no_grad().

Source: https://huggingface.co/learn/nlp-course/chapter3/4
The course reports ~85% accuracy on MRPC after 3 epochs of fine-tuning bert-base-uncased. The loss is computed
inside the model, the learning rate is small and decays linearly to 0, and the pretrained weights move little:
fine-tuning, not training from scratch. Scaled: a 2-layer, 32-wide BERT-style encoder "pretrained" on other
sentence pairs stands in for bert-base-uncased, and a made-up sentence-pair task (are most of the pair's words
from the "positive" half of the vocabulary?) for MRPC; ~480 training pairs, batch 8, 3 epochs. transformers'
get_scheduler("linear") is written out as the LambdaLR it builds.
"""

from __future__ import annotations

import torch
from torch.optim import AdamW
from torch.utils.data import DataLoader, Dataset

from ...harness import case
from ._common import sentence_pairs, tiny_bert_from_pretrained


class DictDataset(Dataset):
    """A tokenized datasets.Dataset with set_format("torch"): each item is a dict of tensors."""

    def __init__(self, columns: dict[str, torch.Tensor]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["labels"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.columns.items()}


def get_scheduler_linear(optimizer, num_warmup_steps: int, num_training_steps: int):
    """transformers.get_scheduler("linear", ...) = get_linear_schedule_with_warmup."""

    def lr_lambda(current_step: int) -> float:
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        return max(
            0.0,
            float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)),
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


@case(
    name="healthy-hf-course-dict-batches-linear-schedule",
    source="https://huggingface.co/learn/nlp-course/chapter3/4",
    title="HF course fine-tuning loop: dict batches, model(**batch).loss, AdamW 5e-5, linear decay per step",
    healthy=True,
    verify=lambda m: m["eval_acc"] > 0.8 and m["last_loss"] < m["first_loss"],
    category="other",
)
def program(bug: bool, nb) -> dict[str, float]:
    train_dataloader = DataLoader(DictDataset(sentence_pairs(512, seed=5)), shuffle=True, batch_size=8)
    eval_dataloader = DataLoader(DictDataset(sentence_pairs(256, seed=6)), batch_size=8)
    model = tiny_bert_from_pretrained(num_labels=2)
    optimizer = AdamW(model.parameters(), lr=5e-5)
    num_epochs = 3
    num_training_steps = num_epochs * len(train_dataloader)
    lr_scheduler = get_scheduler_linear(optimizer, num_warmup_steps=0, num_training_steps=num_training_steps)
    losses = []
    with nb.watch(model, optimizer):
        model.train()
        for _epoch in range(num_epochs):
            for batch in train_dataloader:
                outputs = model(**batch)
                loss = outputs.loss
                loss.backward()
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
                losses.append(loss.item())
    model.eval()
    correct = total = 0
    for batch in eval_dataloader:
        with torch.no_grad():
            outputs = model(**batch)
        predictions = torch.argmax(outputs.logits, dim=-1)
        correct += (predictions == batch["labels"]).sum().item()
        total += len(predictions)
    k = len(losses) // 5
    return {"first_loss": sum(losses[:k]) / k, "last_loss": sum(losses[-k:]) / k, "eval_acc": correct / total}
