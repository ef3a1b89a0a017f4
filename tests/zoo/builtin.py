"""`torch.nn` built-in layers as a user composes them: every layer family PyTorch ships, small inputs.

Source for all of them: the layers' own documentation examples in torch/nn/modules/*.py (the
`Examples::` blocks), scaled down to batch 2 and widths of 16-64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import register

DOCS = "torch.nn docs examples ({})"


@register("builtin_transformer", tags="builtin attention seq2seq", source=DOCS.format("nn.Transformer"))
def builtin_transformer():
    model = nn.Transformer(
        d_model=32, nhead=4, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=37, batch_first=True
    ).eval()
    src, tgt = torch.randn(2, 7, 32), torch.randn(2, 5, 32)
    return (
        model,
        (src, tgt),
        {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(5), "tgt_is_causal": True},
    )


@register(
    "builtin_transformer_encoder_train", tags="builtin attention train",
    source=DOCS.format("nn.TransformerEncoder") + ", train mode: dropout draws from the RNG",
)  # fmt: skip
def builtin_transformer_encoder_train():
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=37, batch_first=True, norm_first=True)
    return (
        nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).train(),
        (torch.randn(2, 7, 32),),
        {},
    )


@register(
    "builtin_transformer_encoder_padded_eval", tags="builtin attention nested_tensor",
    source=DOCS.format("nn.TransformerEncoder") + ", eval mode with a key padding mask: PyTorch's fast path "
    "turns the batch into a nested tensor (data-dependent) and back",
    meta_unsupported="the fast path builds a nested tensor from the padding mask's values (data-dependent)",
)  # fmt: skip
def builtin_transformer_encoder_padded_eval():
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=37, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2).eval()
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[1, -3:] = True
    return model, (torch.randn(2, 7, 32),), {"src_key_padding_mask": mask}


@register(
    "builtin_transformer_decoder", tags="builtin attention", source=DOCS.format("nn.TransformerDecoder")
)
def builtin_transformer_decoder():
    layer = nn.TransformerDecoderLayer(32, 4, dim_feedforward=37, batch_first=True)
    model = nn.TransformerDecoder(layer, num_layers=2, norm=nn.LayerNorm(32)).eval()
    return model, (torch.randn(2, 5, 32), torch.randn(2, 7, 32)), {}


@register(
    "builtin_multihead_attention",
    tags="builtin attention tuple_output",
    source=DOCS.format("nn.MultiheadAttention"),
)
def builtin_multihead_attention():
    model = nn.MultiheadAttention(32, 4, batch_first=True, kdim=16, vdim=24).eval()
    q, k, v = torch.randn(2, 5, 32), torch.randn(2, 7, 16), torch.randn(2, 7, 24)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, -2:] = True
    return model, (q, k, v), {"key_padding_mask": mask, "need_weights": True, "average_attn_weights": False}


@register(
    "builtin_lstm_bidirectional",
    tags="builtin rnn nested_output",
    source=DOCS.format("nn.LSTM"),
)
def builtin_lstm_bidirectional():
    model = nn.LSTM(8, 16, num_layers=2, bidirectional=True, batch_first=True, proj_size=4)
    h0, c0 = torch.zeros(4, 2, 4), torch.zeros(4, 2, 16)
    return model, (torch.randn(2, 6, 8), (h0, c0)), {}


@register("builtin_gru", tags="builtin rnn", source=DOCS.format("nn.GRU"))
def builtin_gru():
    return nn.GRU(8, 16, num_layers=2, dropout=0.0), (torch.randn(6, 2, 8),), {}


@register(
    "builtin_rnn_relu_unbatched",
    tags="builtin rnn",
    source=DOCS.format("nn.RNN") + ", unbatched input",
)
def builtin_rnn_relu_unbatched():
    return nn.RNN(8, 16, nonlinearity="relu", bidirectional=True), (torch.randn(6, 8),), {}


@register(
    "builtin_lstm_packed_input", tags="builtin rnn packed hard",
    source=DOCS.format("nn.utils.rnn.pack_padded_sequence") + ": a PackedSequence passed to nn.LSTM",
)  # fmt: skip
def builtin_lstm_packed_input():
    packed = pack_padded_sequence(torch.randn(2, 6, 8), torch.tensor([6, 4]), batch_first=True)
    return nn.LSTM(8, 16, batch_first=True, bidirectional=True), (packed,), {}


class _PackInForward(nn.Module):
    """The usual padded-batch pattern: pack in forward, run the RNN, unpack."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8, padding_idx=0)
        self.gru = nn.GRU(8, 16, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.emb(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.out(out)


@register(
    "builtin_pack_in_forward", tags="builtin rnn packed hard",
    source=DOCS.format("nn.utils.rnn.pack_padded_sequence") + " + pad_packed_sequence inside forward",
)  # fmt: skip
def builtin_pack_in_forward():
    ids = torch.randint(1, 20, (2, 6))
    return _PackInForward(), (ids, torch.tensor([4, 6])), {}


@register(
    "builtin_conv1d_stack", tags="builtin conv", source=DOCS.format("nn.Conv1d, nn.MaxPool1d, nn.AvgPool1d")
)
def builtin_conv1d_stack():
    model = nn.Sequential(
        nn.Conv1d(4, 16, 5, stride=2, padding=2, padding_mode="circular"),
        nn.BatchNorm1d(16), nn.ReLU(),
        nn.Conv1d(16, 16, 3, padding="same", dilation=2, groups=4),
        nn.MaxPool1d(3, stride=2, ceil_mode=True),
        nn.Conv1d(16, 8, 3, padding="valid"),
        nn.AvgPool1d(2, count_include_pad=False, ceil_mode=True),
    ).eval()  # fmt: skip
    return model, (torch.randn(2, 4, 37),), {}


@register(
    "builtin_conv2d_stack",
    tags="builtin conv",
    source=DOCS.format("nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d"),
)
def builtin_conv2d_stack():
    model = nn.Sequential(
        nn.Conv2d(3, 16, (3, 5), stride=(2, 1), padding=(1, 2), padding_mode="reflect"),
        nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16, bias=False),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True),
        nn.Conv2d(16, 32, 1), nn.GELU(),
        nn.AdaptiveAvgPool2d((2, 3)), nn.Flatten(), nn.Linear(32 * 6, 10),
    ).eval()  # fmt: skip
    return model, (torch.randn(2, 3, 19, 23),), {}


@register(
    "builtin_conv3d_stack", tags="builtin conv", source=DOCS.format("nn.Conv3d, nn.AvgPool3d, nn.MaxPool3d")
)
def builtin_conv3d_stack():
    model = nn.Sequential(
        nn.Conv3d(2, 8, (3, 3, 3), stride=(1, 2, 2), padding=1),
        nn.BatchNorm3d(8), nn.ReLU(), nn.Dropout3d(0.2),
        nn.MaxPool3d(2, ceil_mode=True),
        nn.Conv3d(8, 8, 3, padding="same", padding_mode="replicate"),
        nn.AvgPool3d((1, 2, 2), stride=1, padding=(0, 1, 1)),
        nn.AdaptiveMaxPool3d(1),
    ).eval()  # fmt: skip
    return model, (torch.randn(2, 2, 5, 12, 12),), {}


class _TransposeStack(nn.Module):
    """Transposed convolutions 1d/2d/3d, the explicit `output_size=` form included."""

    def __init__(self) -> None:
        super().__init__()
        self.t1 = nn.ConvTranspose1d(4, 8, 4, stride=2, padding=1)
        self.t2 = nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1, dilation=1)
        self.t2b = nn.ConvTranspose2d(8, 2, 3, stride=2, padding=1)
        self.t3 = nn.ConvTranspose3d(2, 4, (2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), groups=2)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, x3: torch.Tensor):
        a = self.t1(x1)
        b = self.t2(x2)
        b = self.t2b(b, output_size=[b.shape[-2] * 2, b.shape[-1] * 2])
        return a, b, self.t3(x3)


@register(
    "builtin_conv_transpose", tags="builtin conv tuple_output", source=DOCS.format("nn.ConvTranspose1d/2d/3d")
)
def builtin_conv_transpose():
    return _TransposeStack(), (torch.randn(2, 4, 9), torch.randn(2, 4, 5, 6), torch.randn(2, 2, 3, 4, 4)), {}


class _Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 16, padding_idx=0)
        self.bag = nn.EmbeddingBag(30, 16, mode="sum")
        self.bag_mean = nn.EmbeddingBag(30, 16, mode="max")

    def forward(self, ids: torch.Tensor, flat: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor):
        return self.emb(ids), self.bag(flat, offsets, per_sample_weights=weights), self.bag_mean(ids)


@register("builtin_embeddings", tags="builtin embedding", source=DOCS.format("nn.Embedding, nn.EmbeddingBag"))
def builtin_embeddings():
    ids = torch.randint(0, 30, (2, 5))
    flat = torch.randint(0, 30, (7,))
    return _Embeddings(), (ids, flat, torch.tensor([0, 3]), torch.rand(7)), {}


class _Resample(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_bilinear = nn.Upsample(size=(9, 11), mode="bilinear", align_corners=True)
        self.up_bicubic = nn.Upsample(scale_factor=1.5, mode="bicubic")
        self.channel_shuffle = nn.ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(x)  # (2, 2, 12, 12)
        y = self.unshuffle(self.up_nearest(y))  # (2, 8, 12, 12)
        y = self.channel_shuffle(y)
        y = self.up_bilinear(y) + F.interpolate(y, size=(9, 11), mode="nearest-exact")
        return self.up_bicubic(y)


@register(
    "builtin_resampling",
    tags="builtin upsample",
    source=DOCS.format("nn.PixelShuffle, nn.Upsample, nn.ChannelShuffle"),
)
def builtin_resampling():
    return _Resample(), (torch.randn(2, 8, 6, 6),), {}


class _FoldUnfold(nn.Module):
    """Sliding blocks out and back in (the docs' `fold(unfold(x))` round trip), and F.unfold as a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.unfold = nn.Unfold(kernel_size=(2, 3), padding=1, stride=(1, 2))
        self.fold = nn.Fold(output_size=(6, 7), kernel_size=(2, 3), padding=1, stride=(1, 2))
        self.weight = nn.Parameter(torch.randn(4, 3 * 2 * 3))

    def forward(self, x: torch.Tensor):
        blocks = self.unfold(x)  # (N, C*2*3, L)
        back = self.fold(blocks)
        conv = (self.weight @ blocks).view(x.shape[0], 4, 7, 4)
        return back, conv


@register("builtin_fold_unfold", tags="builtin", source=DOCS.format("nn.Fold, nn.Unfold"))
def builtin_fold_unfold():
    return _FoldUnfold(), (torch.randn(2, 3, 6, 7),), {}


class _Pools(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.max1 = nn.MaxPool1d(2, return_indices=True)
        self.unpool1 = nn.MaxUnpool1d(2)
        self.lp = nn.LPPool2d(2, 3, stride=2)
        self.amax = nn.AdaptiveMaxPool2d((3, None), return_indices=True)
        self.avg = nn.AvgPool2d(
            3, stride=2, padding=1, ceil_mode=True, count_include_pad=False, divisor_override=4
        )
        self.frac = nn.FractionalMaxPool2d(2, output_ratio=0.5)

    def forward(self, seq: torch.Tensor, img: torch.Tensor):
        pooled, idx = self.max1(seq)
        restored = self.unpool1(pooled, idx, output_size=seq.shape)
        a, a_idx = self.amax(img)
        return restored, self.lp(img), a, a_idx, self.avg(img), self.frac(img)


@register(
    "builtin_pooling_variants", tags="builtin pooling rng",
    source=DOCS.format("MaxPool1d/MaxUnpool1d, LPPool2d, AdaptiveMaxPool2d, AvgPool2d, FractionalMaxPool2d"),
)  # fmt: skip
def builtin_pooling_variants():
    return _Pools().eval(), (torch.randn(2, 4, 10), torch.randn(2, 3, 11, 9)), {}


@register(
    "builtin_norms_train",
    tags="builtin norm train",
    source=DOCS.format("GroupNorm, InstanceNorm2d, LayerNorm, RMSNorm, LocalResponseNorm"),
)
def builtin_norms_train():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.InstanceNorm2d(8, affine=True, track_running_stats=True),
        nn.LocalResponseNorm(3), nn.BatchNorm2d(8), nn.Flatten(2), nn.LayerNorm(36),
        nn.RMSNorm([8, 36]), nn.SiLU(),
    ).train()  # fmt: skip
    return model, (torch.randn(2, 3, 8, 8),), {}


class _Misc(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bilinear = nn.Bilinear(8, 6, 4)
        self.prelu = nn.PReLU(4)
        self.unflatten = nn.Unflatten(1, (2, 2))
        self.softmax2d = nn.Softmax2d()
        self.cos = nn.CosineSimilarity(dim=1)
        self.pdist = nn.PairwiseDistance()
        self.pad = nn.Sequential(nn.ReflectionPad2d((1, 0, 2, 1)), nn.ReplicationPad2d(1), nn.ZeroPad2d(1),
                                 nn.CircularPad2d(1), nn.ConstantPad2d((0, 1), 0.5))  # fmt: skip
        self.pad3d = nn.ReplicationPad3d(1)
        self.ident = nn.Identity(54, unused="argument")

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        y = self.prelu(self.bilinear(a, b))
        img = self.softmax2d(y[:, :, None, None].expand(-1, -1, 5, 6))
        padded = self.pad(img)
        return (self.ident(y), self.unflatten(y), self.cos(a[:, :6], b), self.pdist(a[:, :6], b), padded,
                self.pad3d(padded[:, :2]))  # fmt: skip


@register(
    "builtin_misc_layers",
    tags="builtin",
    source=DOCS.format("Bilinear, PReLU, Unflatten, Softmax2d, padding layers, distances"),
)
def builtin_misc_layers():
    return _Misc(), (torch.randn(2, 8), torch.randn(2, 6)), {}


@register(
    "builtin_embedding_max_norm", tags="builtin embedding hard",
    source=DOCS.format("nn.Embedding(max_norm=...)") + ": the forward pass renormalizes the looked-up rows "
    "of the weight in place",
)  # fmt: skip
def builtin_embedding_max_norm():
    emb = nn.Embedding(20, 8, max_norm=1.0)
    with torch.no_grad():
        emb.weight.mul_(3.0)  # rows well above the norm, so the forward pass has something to renormalize
    return nn.Sequential(emb, nn.Flatten(), nn.Linear(40, 3)), (torch.randint(0, 20, (2, 5)),), {}
