"""Helpers the healthy programs share: d2l's Trainer loop, resized digits, synthetic text and names, and
a small "pretrained" backbone for the transfer-learning programs.

Everything here is data plumbing or a faithful copy of a library loop the sources call (d2l's
`Trainer.fit_epoch`); the models, optimizers and loops of each program stay in its own module.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits, digits_images, split


# -- data -----------------------------------------------------------------------------------------------
def resized_digits(size: int, channels: int = 1, unit: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8x8 digits bilinearly resized to `size` x `size` (the shape MNIST/CIFAR models expect), with
    `channels` copies of the grey channel; `unit=True` gives pixels in [0, 1] (ToTensor), else [-1, 1]."""
    x, y = digits_images(normalize=False)
    x = x / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    if not unit:
        x = (x - 0.5) / 0.5  # transforms.Normalize((0.5,), (0.5,)) as the tutorials do
    return x.repeat(1, channels, 1, 1), y


def unit_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The digits as (N, 64) pixels in [0, 1] (ToTensor scaling), for the autoencoders and the VAE."""
    x, y = digits(normalize=False)
    return x / 16.0, y


def zipf_corpus(n_tokens: int, vocab: int, seed: int, follow: float = 0.6) -> torch.Tensor:
    """Word ids with Zipf-like frequencies and learnable structure: after word w, with probability `follow`
    one of w's three fixed successors comes next, else a word drawn from a Zipf(1) unigram distribution."""
    g = torch.Generator().manual_seed(seed)
    ranks = torch.arange(1, vocab + 1, dtype=torch.float64)
    unigram = (1.0 / ranks) / (1.0 / ranks).sum()
    succ = torch.multinomial(unigram.expand(vocab, -1), 3, replacement=True, generator=g)
    draws = torch.multinomial(unigram, n_tokens, replacement=True, generator=g)
    coin = torch.rand(n_tokens, generator=g)
    pick = torch.randint(0, 3, (n_tokens,), generator=g)
    out = torch.empty(n_tokens, dtype=torch.long)
    out[0] = draws[0]
    for i in range(1, n_tokens):
        out[i] = succ[out[i - 1], pick[i]] if coin[i] < follow else draws[i]
    return out


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def char_text(n_chars: int, seed: int, n_words: int = 60) -> str:
    """Lower-case text of made-up words separated by spaces, the words drawn with Zipf-like frequencies
    (what d2l's `TimeMachine._preprocess` leaves of a novel: letters and spaces only)."""
    g = torch.Generator().manual_seed(seed)
    words = []
    for _ in range(n_words):
        n = int(torch.randint(2, 8, (1,), generator=g))
        words.append("".join(_LETTERS[int(i)] for i in torch.randint(0, 26, (n,), generator=g)))
    ranks = torch.arange(1, n_words + 1, dtype=torch.float64)
    weights = 1.0 / ranks
    parts: list[str] = []
    total = 0
    while total < n_chars:
        idx = torch.multinomial(weights, 64, replacement=True, generator=g)
        for i in idx.tolist():
            parts.append(words[i])
            total += len(words[i]) + 1
    return " ".join(parts)[:n_chars]


def synthetic_names(n_per_category: int, seed: int) -> dict[str, list[str]]:
    """Surnames of five made-up "languages", each built from its own syllables (some shared), the way the
    tutorial's names differ in spelling by language of origin."""
    g = torch.Generator().manual_seed(seed)
    syllables = {
        "Aldish": ["ka", "ro", "mi", "ta", "ko", "ri", "sa", "to"],
        "Bertic": ["sch", "mann", "berg", "er", "ein", "hof", "ster", "ke"],
        "Corvan": ["ov", "sky", "vich", "ev", "in", "ko", "ly", "ra"],
        "Dulese": ["ez", "al", "do", "ra", "gu", "es", "ti", "mo"],
        "Emmish": ["son", "ley", "ton", "ers", "wood", "ham", "ly", "ford"],
    }
    names: dict[str, list[str]] = {}
    for lang, syl in syllables.items():
        out = []
        for _ in range(n_per_category):
            k = int(torch.randint(2, 4, (1,), generator=g))
            parts = [syl[int(i)] for i in torch.randint(0, len(syl), (k,), generator=g)]
            out.append("".join(parts).capitalize())
        names[lang] = out
    return names


# -- d2l's Trainer (d2l/torch.py, Trainer.fit and Trainer.fit_epoch) --------------------------------------
class D2LModule(nn.Module):
    """d2l.Module without the progress board: loss, training_step, validation_step, configure_optimizers."""

    lr: float = 0.1

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)

    def training_step(self, batch: list[torch.Tensor]) -> torch.Tensor:
        return self.loss(self(*batch[:-1]), batch[-1])

    def validation_step(self, batch: list[torch.Tensor]) -> None:
        self.val_losses.append(float(self.loss(self(*batch[:-1]), batch[-1])))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class D2LClassifier(D2LModule):
    """d2l.Classifier: cross-entropy on reshaped logits; validation records loss and accuracy."""

    def validation_step(self, batch: list[torch.Tensor]) -> None:
        Y_hat = self(*batch[:-1])
        self.val_losses.append(float(self.loss(Y_hat, batch[-1])))
        self.val_accs.append(float(self.accuracy(Y_hat, batch[-1])))

    def accuracy(self, Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        preds = Y_hat.argmax(axis=1).type(Y.dtype)
        return (preds == Y.reshape(-1)).float().mean()

    def loss(self, Y_hat: torch.Tensor, Y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        Y_hat = Y_hat.reshape((-1, Y_hat.shape[-1]))
        Y = Y.reshape((-1,))
        return F.cross_entropy(Y_hat, Y, reduction="mean" if averaged else "none")


class D2LTrainer:
    """d2l.Trainer: `fit` builds the optimizer from the model, then each epoch trains (backward and step
    under torch.no_grad(), as d2l writes it, with its own norm clipping) and runs the validation pass."""

    def __init__(self, max_epochs: int, gradient_clip_val: float = 0) -> None:
        self.max_epochs = max_epochs
        self.gradient_clip_val = gradient_clip_val
        self.train_losses: list[float] = []

    def fit(self, model: D2LModule, train_dataloader: Any, val_dataloader: Any) -> None:
        self.train_dataloader, self.val_dataloader = train_dataloader, val_dataloader
        self.model = model
        model.val_losses, model.val_accs = [], []
        self.optim = model.configure_optimizers()
        self.epoch = 0
        for epoch in range(self.max_epochs):  # d2l writes `for self.epoch in range(...)`
            self.epoch = epoch
            self.fit_epoch()

    def fit_epoch(self) -> None:
        self.model.train()
        for batch in self.train_dataloader:
            loss = self.model.training_step(batch)
            self.optim.zero_grad()
            with torch.no_grad():
                loss.backward()
                if self.gradient_clip_val > 0:
                    self.clip_gradients(self.gradient_clip_val, self.model)
                self.optim.step()
            self.train_losses.append(float(loss))
        if self.val_dataloader is None:
            return
        self.model.eval()
        self.model.val_losses, self.model.val_accs = [], []
        for batch in self.val_dataloader:
            with torch.no_grad():
                self.model.validation_step(batch)

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm


def tensor_loader(tensors: tuple[torch.Tensor, ...], batch_size: int, train: bool) -> Any:
    """d2l.DataModule.get_tensorloader."""
    dataset = torch.utils.data.TensorDataset(*tensors)
    return torch.utils.data.DataLoader(dataset, batch_size, shuffle=train)


# -- a small "pretrained" backbone for the transfer-learning programs ------------------------------------
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock (two 3x3 convs with BatchNorm, identity or 1x1 downsample)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class TinyResNet(nn.Module):
    """A resnet18-shaped network for 8x8 inputs (stem, four stages of one BasicBlock, avgpool, `fc`),
    with torchvision's attribute names so `model.fc` and `named_parameters()` read as in the tutorials."""

    def __init__(self, num_classes: int = 8, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = BasicBlock(width, width)
        self.layer2 = BasicBlock(width, 2 * width, 2)
        self.layer3 = BasicBlock(2 * width, 4 * width, 2)
        self.layer4 = BasicBlock(4 * width, 4 * width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_PRETRAINED: dict[str, dict[str, torch.Tensor]] = {}


def pretrained_tiny_resnet() -> TinyResNet:
    """A TinyResNet "pretrained" on digits 0-7 (the stand-in for ImageNet weights), built once per process
    from a private seed so that the global RNG the program uses is left untouched."""
    if "w" not in _PRETRAINED:
        state = torch.random.get_rng_state()
        torch.manual_seed(4321)
        (x, y), _ = split(*digits_images())
        keep = y < 8
        x, y = x[keep], y[keep]
        net = TinyResNet(8)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        for _epoch in range(4):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i : i + 64]
                opt.zero_grad()
                F.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
        _PRETRAINED["w"] = {k: v.clone() for k, v in net.state_dict().items()}
        torch.random.set_rng_state(state)
    net = TinyResNet(8)
    net.load_state_dict(_PRETRAINED["w"])
    return net


def two_class_digits(a: int = 8, b: int = 9) -> tuple[tuple, tuple]:
    """Digits `a` vs `b` (classes the backbone never saw), labelled 0/1: ~250 train, ~100 val images, the
    size of the tutorial's ants/bees set (244 train, 153 val)."""
    x, y = digits_images()
    keep = (y == a) | (y == b)
    x, y = x[keep], (y[keep] == b).long()
    g = torch.Generator().manual_seed(99)
    perm = torch.randperm(len(x), generator=g)
    tr, va = perm[:250], perm[250:]
    return (x[tr], y[tr]), (x[va], y[va])


def batches(x: torch.Tensor, y: torch.Tensor, size: int, g: torch.Generator) -> Iterator[tuple]:
    perm = torch.randperm(len(x), generator=g)
    for i in range(0, len(x), size):
        idx = perm[i : i + size]
        yield x[idx], y[idx]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


# -- d2l's character-level language model pieces (d2l/torch.py: TimeMachine, Vocab, RNNLMScratch, RNNLM) --
def time_machine_tensors(text: str, num_steps: int, num_train: int, num_val: int) -> tuple:
    """d2l.TimeMachine on `text`: character tokens, a vocabulary with '<unk>' (sorted), and every window of
    num_steps + 1 characters split into inputs X and shifted targets Y; returns (train, val, vocab size)."""
    tokens = list(text)
    idx_to_token = sorted(set(["<unk>", *tokens]))
    token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
    corpus = [token_to_idx[t] for t in tokens]
    array = torch.tensor([corpus[i : i + num_steps + 1] for i in range(len(corpus) - num_steps)])
    X, Y = array[:, :-1], array[:, 1:]
    train = (X[:num_train], Y[:num_train])
    val = (X[num_train : num_train + num_val], Y[num_train : num_train + num_val])
    return train, val, len(idx_to_token)


class RNNLM(D2LClassifier):
    """d2l.RNNLM (RNNLMScratch with a LazyLinear output layer): one-hot inputs, the wrapped RNN, per-step
    logits swapped to (batch, steps, vocab), cross-entropy through d2l.Classifier.loss."""

    def __init__(self, rnn: nn.Module, vocab_size: int, lr: float = 0.01) -> None:
        super().__init__()
        self.rnn, self.vocab_size, self.lr = rnn, vocab_size, lr
        self.linear = nn.LazyLinear(self.vocab_size)

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        return F.one_hot(X.T, self.vocab_size).type(torch.float32)

    def output_layer(self, hiddens: torch.Tensor) -> torch.Tensor:
        return self.linear(hiddens).swapaxes(0, 1)

    def forward(self, X: torch.Tensor, state: Any = None) -> torch.Tensor:
        embs = self.one_hot(X)
        rnn_outputs, _ = self.rnn(embs, state)
        return self.output_layer(rnn_outputs)


# -- a tiny BERT-style sentence-pair classifier "from_pretrained", for the Hugging Face course loop --------
class SequenceClassifierOutput(dict):
    """What a transformers model returns: a dict whose keys are also attributes (`outputs.loss`)."""

    __getattr__ = dict.__getitem__


class TinyBertForSequenceClassification(nn.Module):
    """Embeddings (token, position, token type) + LayerNorm, a post-LN GELU TransformerEncoder, the [CLS]
    position into a Linear classifier; forward(input_ids, token_type_ids, attention_mask, labels) returns
    loss and logits as transformers' AutoModelForSequenceClassification does."""

    def __init__(
        self, vocab_size: int, hidden: int = 32, layers: int = 2, heads: int = 2, num_labels: int = 2
    ):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.position_embeddings = nn.Embedding(64, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.LayerNorm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 4 * hidden, dropout=0.1, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, token_type_ids, attention_mask, labels=None) -> SequenceClassifierOutput:
        pos = torch.arange(input_ids.shape[1])
        h = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(pos)
            + self.token_type_embeddings(token_type_ids)
        )
        h = self.encoder(self.LayerNorm(h), src_key_padding_mask=attention_mask == 0)
        logits = self.classifier(h[:, 0])
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def sentence_pairs(n: int, seed: int, vocab: int = 40, length: int = 6) -> dict[str, torch.Tensor]:
    """A GLUE-style sentence-pair set: [CLS] s1 [SEP] s2 [SEP] with token type ids, label 1 when most of the
    pair's words come from the "positive" half of the vocabulary. Token ids: 0 pad, 1 CLS, 2 SEP."""
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(0, vocab, (n, 2 * length), generator=g)
    positive = (words < vocab // 2).sum(1)
    keep = positive != length  # no ties
    words, label = words[keep], (positive[keep] > length).long()
    m = len(label)
    cls, sep = torch.ones(m, 1, dtype=torch.long), torch.full((m, 1), 2, dtype=torch.long)
    input_ids = torch.cat([cls, words[:, :length] + 3, sep, words[:, length:] + 3, sep], 1)
    token_type_ids = torch.cat(
        [torch.zeros(m, length + 2, dtype=torch.long), torch.ones(m, length + 1, dtype=torch.long)], 1
    )
    return {
        "input_ids": input_ids,
        "token_type_ids": token_type_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": label,
    }


_BERT: dict[str, dict[str, torch.Tensor]] = {}


def tiny_bert_from_pretrained(num_labels: int = 2) -> TinyBertForSequenceClassification:
    """TinyBert with "pretrained" encoder weights (trained once per process, private seed, on other
    sentence pairs with Adam) and a freshly initialised classifier, like `from_pretrained` with a new head."""
    if "w" not in _BERT:
        state = torch.random.get_rng_state()
        torch.manual_seed(2024)
        data = sentence_pairs(1024, seed=77)
        net = TinyBertForSequenceClassification(43)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _epoch in range(6):
            perm = torch.randperm(len(data["labels"]))
            for i in range(0, len(perm), 32):
                idx = perm[i : i + 32]
                opt.zero_grad()
                net(**{k: v[idx] for k, v in data.items()}).loss.backward()
                opt.step()
        _BERT["w"] = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("classifier")}
        torch.random.set_rng_state(state)
    net = TinyBertForSequenceClassification(43, num_labels=num_labels)
    net.load_state_dict(_BERT["w"], strict=False)
    return net
