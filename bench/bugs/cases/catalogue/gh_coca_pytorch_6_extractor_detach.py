"""CoCa trained through vit-pytorch's Extractor, which returned `.clone().detach()` embeddings.

Source: lucidrains/CoCa-pytorch issue #6, "Extractor in vit_pytorch will detach the tensor."
https://github.com/lucidrains/CoCa-pytorch/issues/6
Reported: "The cloned tensor in `Extractor` will be detached ... So gradient may not propagate back to
image encoder." The author confirmed and fixed it in vit-pytorch 0.35.8 (the Extractor no longer
detaches). Scaled down: a patch-embedding ViT-like image encoder wrapped in an Extractor, a text side that
embeds the digit's name token, CoCa's contrastive loss plus a captioning (next-token) loss; AdamW.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...data import digits_images, loader, split
from ...harness import case


class ViT(nn.Module):
    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.to_patch = nn.Conv2d(1, dim, kernel_size=2, stride=2)  # 16 patches of 2x2
        self.pos = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, batch_first=True, dropout=0.0)
        self.transformer = nn.TransformerEncoder(layer, num_layers=1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.to_patch(img).flatten(2).transpose(1, 2) + self.pos
        return self.transformer(x)


class Extractor(nn.Module):
    """vit_pytorch.extractor.Extractor before 0.35.8 returned the embeddings cloned *and detached*."""

    def __init__(self, vit: ViT, detach: bool) -> None:
        super().__init__()
        self.vit, self.detach = vit, detach

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        embeddings = self.vit(img)
        return embeddings.clone().detach() if self.detach else embeddings.clone()


class CoCa(nn.Module):
    def __init__(self, img_encoder: Extractor, dim: int = 32, num_tokens: int = 12) -> None:
        super().__init__()
        self.img_encoder = img_encoder
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.img_to_latent = nn.Linear(dim, dim, bias=False)
        self.text_to_latent = nn.Linear(dim, dim, bias=False)
        self.to_logits = nn.Linear(2 * dim, num_tokens)
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def forward(self, text: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        image_tokens = self.img_encoder(images)
        image_latent = F.normalize(self.img_to_latent(image_tokens.mean(1)), dim=-1)
        text_embed = self.token_emb(text)  # text = [BOS, digit name]
        text_latent = F.normalize(self.text_to_latent(text_embed[:, 1]), dim=-1)
        sim = image_latent @ text_latent.t() * self.temperature.exp()
        labels = torch.arange(len(text))
        contrastive = (F.cross_entropy(sim, labels) + F.cross_entropy(sim.t(), labels)) / 2
        caption_in = torch.cat([text_embed[:, 0], image_tokens.mean(1)], dim=-1)
        caption = F.cross_entropy(self.to_logits(caption_in), text[:, 1])
        return caption + contrastive


@case(
    name="coca-image-encoder-detached",
    source="https://github.com/lucidrains/CoCa-pytorch/issues/6",
    title="CoCa whose image encoder output passes through an Extractor that .detach()es it",
    expect="no-grad",
    verify=lambda bug, fixed: (
        bug["encoder_changed"] == 0.0
        and fixed["encoder_changed"] == 1.0
        and fixed["val_caption_acc"] > bug["val_caption_acc"] + 0.1
    ),
    category="wiring",
)
def program(bug: bool, nb) -> dict[str, float]:
    (xt, yt), (xv, yv) = split(*digits_images())
    vit = ViT()
    coca = CoCa(Extractor(vit, detach=bug))
    before = [p.detach().clone() for p in vit.parameters()]
    optimizer = torch.optim.AdamW(coca.parameters(), lr=3e-3)
    bos = 10
    with nb.watch(coca, optimizer):
        for _epoch in range(3):
            for images, y in loader(xt, yt, batch_size=64):
                text = torch.stack([torch.full_like(y, bos), y], dim=1)
                optimizer.zero_grad()
                loss = coca(text, images)
                loss.backward()
                optimizer.step()
    changed = any(not torch.equal(a, b) for a, b in zip(before, vit.parameters()))
    with torch.no_grad():
        tokens = coca.img_encoder(xv).mean(1)
        bos_emb = coca.token_emb(torch.full_like(yv, bos))
        pred = coca.to_logits(torch.cat([bos_emb, tokens], dim=-1)).argmax(1)
    return {"encoder_changed": float(changed), "val_caption_acc": (pred == yv).float().mean().item()}
