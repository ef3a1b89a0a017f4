"""Hugging Face `transformers` models built from small configs in code (never downloaded).

Each builder imports transformers itself; test_zoo skips these entries cleanly when transformers is
missing (`requires=("transformers",)`). Sizes follow the transformers test suite's own tiny configs
(hidden 16-64, 1-2 layers, vocabularies under 100, batch 2). Decoder-only models run with
`use_cache=False` unless the entry is about the cache object (a plain object holding tensors).
Most models are put in eval mode, as `from_pretrained` returns them; a few stay in train mode so that
dropout (and the RNG it consumes) is part of the check.
"""

from __future__ import annotations

import torch

from . import register

HF = ("transformers",)
VOCAB = 99
SRC = "transformers {} built from {}(...) in code, sizes after the transformers test suite's tiny configs"


def _ids(t: int = 8, vocab: int = VOCAB, b: int = 2) -> torch.Tensor:
    return torch.randint(3, vocab, (b, t))


def _mask(t: int = 8, b: int = 2) -> torch.Tensor:
    m = torch.ones(b, t, dtype=torch.long)
    m[1, -2:] = 0  # the second sequence is padded: masks are part of the shapes walk
    return m


def _text(
    cls_name: str, config_name: str, config: dict, *, train: bool = False, eager: bool = False, **inputs
):
    import transformers

    cfg = getattr(transformers, config_name)(**config)
    if eager:
        cfg._attn_implementation = "eager"
    model = getattr(transformers, cls_name)(cfg)
    model.train(train)
    return model, (), inputs


def _src(cls: str, cfg: str) -> str:
    return SRC.format(cls, cfg)


# ------------------------------------------------------------------------------------------------------
# encoders


SDPA_META = (
    "transformers' sdpa mask code reads tensor values (padding_mask.all(), the packed-sequence check on "
    "position ids): .item() cannot be called on meta tensors"
)


@register(
    "hf_bert", tags="hf nlp encoder padded", source=_src("BertModel", "BertConfig") + "; a padded batch",
    requires=HF, meta_unsupported=SDPA_META,
)  # fmt: skip
def hf_bert():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)  # fmt: skip
    return _text("BertModel", "BertConfig", cfg, input_ids=_ids(), attention_mask=_mask(),
                 token_type_ids=torch.zeros(2, 8, dtype=torch.long))  # fmt: skip


@register(
    "hf_bert_classifier_train",
    tags="hf nlp encoder classifier train",
    source=_src("BertForSequenceClassification", "BertConfig") + "; left in train mode (dropout on)",
    requires=HF,
)
def hf_bert_classifier_train():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, num_labels=3)  # fmt: skip
    return _text("BertForSequenceClassification", "BertConfig", cfg, train=True, input_ids=_ids(),
                 labels=torch.tensor([0, 2]))  # fmt: skip


@register(
    "hf_distilbert", tags="hf nlp encoder classifier",
    source=_src("DistilBertForSequenceClassification", "DistilBertConfig"), requires=HF,
)  # fmt: skip
def hf_distilbert():
    cfg = dict(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64,
               num_labels=3)  # fmt: skip
    return _text("DistilBertForSequenceClassification", "DistilBertConfig", cfg, input_ids=_ids())


@register(
    "hf_roberta", tags="hf nlp encoder", source=_src("RobertaForMaskedLM", "RobertaConfig"), requires=HF
)
def hf_roberta():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, pad_token_id=1)  # fmt: skip
    return _text("RobertaForMaskedLM", "RobertaConfig", cfg, input_ids=_ids())


@register(
    "hf_albert", tags="hf nlp encoder shared",
    source=_src("AlbertModel", "AlbertConfig") + "; ALBERT shares one layer's weights across all layers",
    requires=HF,
)  # fmt: skip
def hf_albert():
    cfg = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    return _text("AlbertModel", "AlbertConfig", cfg, input_ids=_ids())


@register(
    "hf_electra", tags="hf nlp encoder", source=_src("ElectraForPreTraining", "ElectraConfig"), requires=HF
)
def hf_electra():
    cfg = dict(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    return _text("ElectraForPreTraining", "ElectraConfig", cfg, input_ids=_ids())


@register(
    "hf_deberta_v2", tags="hf nlp encoder", source=_src("DebertaV2Model", "DebertaV2Config"), requires=HF
)
def hf_deberta_v2():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, relative_attention=True,
               position_buckets=8, pos_att_type=["p2c", "c2p"])  # fmt: skip
    return _text("DebertaV2Model", "DebertaV2Config", cfg, input_ids=_ids(), attention_mask=_mask())


@register(
    "hf_mobilebert", tags="hf nlp encoder", source=_src("MobileBertModel", "MobileBertConfig"), requires=HF
)
def hf_mobilebert():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, embedding_size=16, intra_bottleneck_size=16,
               true_hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               num_feedforward_networks=2, max_position_embeddings=64)  # fmt: skip
    return _text("MobileBertModel", "MobileBertConfig", cfg, input_ids=_ids())


@register("hf_funnel", tags="hf nlp encoder pooling", source=_src("FunnelModel", "FunnelConfig"), requires=HF)
def hf_funnel():
    cfg = dict(vocab_size=VOCAB, d_model=32, n_head=4, d_head=8, d_inner=37, block_sizes=[1, 1],
               num_decoder_layers=1)  # fmt: skip
    return _text("FunnelModel", "FunnelConfig", cfg, input_ids=_ids())


@register("hf_esm", tags="hf encoder rotary", source=_src("EsmForMaskedLM", "EsmConfig"), requires=HF)
def hf_esm():
    cfg = dict(vocab_size=33, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, position_embedding_type="rotary",
               pad_token_id=1, mask_token_id=32)  # fmt: skip
    return _text("EsmForMaskedLM", "EsmConfig", cfg, input_ids=_ids(vocab=33))


# ------------------------------------------------------------------------------------------------------
# decoders


def _causal(cls: str, config: str, cfg: dict, **extra):
    # eager attention and an explicit all-ones mask: with sdpa (the default) transformers' mask code asks
    # whether the mask is all ones (`.all()`, an `.item()`) and looks for packed sequences in the
    # position ids, which reads values the meta device does not have (see hf_llama_sdpa and hf_bert)
    mask = torch.ones(2, 8, dtype=torch.long)
    return _text(
        cls, config, cfg, eager=True, input_ids=_ids(), attention_mask=mask, use_cache=False, **extra
    )


@register(
    "hf_gpt2", tags="hf nlp decoder tied",
    source=_src("GPT2LMHeadModel", "GPT2Config") + "; lm_head tied to the token embedding", requires=HF,
)  # fmt: skip
def hf_gpt2():
    cfg = dict(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2
    )
    return _causal("GPT2LMHeadModel", "GPT2Config", cfg, labels=_ids())


@register(
    "hf_gpt2_kv_cache", tags="hf nlp decoder tied plain_object",
    source=_src("GPT2LMHeadModel", "GPT2Config") + "; use_cache=True: the output holds a DynamicCache, "
    "a plain object whose layers keep the key/value tensors",
    requires=HF,
)  # fmt: skip
def hf_gpt2_kv_cache():
    import transformers

    cfg = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1, eos_token_id=2
    )
    return transformers.GPT2LMHeadModel(cfg).eval(), (_ids(),), {"use_cache": True}


@register(
    "hf_llama", tags="hf nlp decoder rotary gqa", source=_src("LlamaForCausalLM", "LlamaConfig"), requires=HF
)
def hf_llama():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return _causal("LlamaForCausalLM", "LlamaConfig", cfg)


@register(
    "hf_llama_sdpa", tags="hf nlp decoder rotary gqa",
    source=_src("LlamaForCausalLM", "LlamaConfig") + " with the default sdpa attention and no mask: the "
    "mask code checks the position ids (torch.arange in forward) for packed sequences with .item(), which "
    "a plain meta forward pass cannot do; trace's meta walk follows the values of small integer tensors "
    "made by factories (issue 16 defect 9), so it steps through",
    requires=HF,
)  # fmt: skip
def hf_llama_sdpa():
    import transformers

    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return transformers.LlamaForCausalLM(cfg).eval(), (_ids(),), {"use_cache": False}


@register(
    "hf_mistral",
    tags="hf nlp decoder rotary gqa",
    source=_src("MistralForCausalLM", "MistralConfig"),
    requires=HF,
)
def hf_mistral():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, sliding_window=4)  # fmt: skip
    return _causal("MistralForCausalLM", "MistralConfig", cfg)


@register(
    "hf_qwen2", tags="hf nlp decoder rotary gqa", source=_src("Qwen2ForCausalLM", "Qwen2Config"), requires=HF
)
def hf_qwen2():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return _causal("Qwen2ForCausalLM", "Qwen2Config", cfg)


@register(
    "hf_gemma", tags="hf nlp decoder rotary", source=_src("GemmaForCausalLM", "GemmaConfig"), requires=HF
)
def hf_gemma():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=1, head_dim=8, max_position_embeddings=64)  # fmt: skip
    return _causal("GemmaForCausalLM", "GemmaConfig", cfg)


@register("hf_phi", tags="hf nlp decoder rotary", source=_src("PhiForCausalLM", "PhiConfig"), requires=HF)
def hf_phi():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
               num_attention_heads=4, max_position_embeddings=64)  # fmt: skip
    return _causal("PhiForCausalLM", "PhiConfig", cfg)


@register(
    "hf_gpt_neo",
    tags="hf nlp decoder local_attention",
    source=_src("GPTNeoForCausalLM", "GPTNeoConfig"),
    requires=HF,
)
def hf_gpt_neo():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=37,
               attention_types=[[["global", "local"], 1]], window_size=4, max_position_embeddings=64)  # fmt: skip
    return _causal("GPTNeoForCausalLM", "GPTNeoConfig", cfg)


@register(
    "hf_gpt_neox",
    tags="hf nlp decoder rotary",
    source=_src("GPTNeoXForCausalLM", "GPTNeoXConfig"),
    requires=HF,
)
def hf_gpt_neox():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, max_position_embeddings=64, rotary_pct=0.5)  # fmt: skip
    return _causal("GPTNeoXForCausalLM", "GPTNeoXConfig", cfg)


@register("hf_gptj", tags="hf nlp decoder rotary", source=_src("GPTJForCausalLM", "GPTJConfig"), requires=HF)
def hf_gptj():
    cfg = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=64)
    return _causal("GPTJForCausalLM", "GPTJConfig", cfg)


@register("hf_opt", tags="hf nlp decoder", source=_src("OPTForCausalLM", "OPTConfig"), requires=HF)
def hf_opt():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=37, num_attention_heads=4,
               max_position_embeddings=64, word_embed_proj_dim=16)  # fmt: skip
    return _causal("OPTForCausalLM", "OPTConfig", cfg)


@register(
    "hf_bloom", tags="hf nlp decoder alibi", source=_src("BloomForCausalLM", "BloomConfig"), requires=HF
)
def hf_bloom():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4)
    return _causal("BloomForCausalLM", "BloomConfig", cfg)


@register(
    "hf_falcon", tags="hf nlp decoder rotary", source=_src("FalconForCausalLM", "FalconConfig"), requires=HF
)
def hf_falcon():
    cfg = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               new_decoder_architecture=True, num_kv_heads=2, parallel_attn=True)  # fmt: skip
    return _causal("FalconForCausalLM", "FalconConfig", cfg)


@register(
    "hf_gpt_bigcode",
    tags="hf nlp decoder mqa",
    source=_src("GPTBigCodeForCausalLM", "GPTBigCodeConfig"),
    requires=HF,
)
def hf_gpt_bigcode():
    cfg = dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, multi_query=True)
    return _causal("GPTBigCodeForCausalLM", "GPTBigCodeConfig", cfg)


@register(
    "hf_mamba",
    tags="hf nlp ssm",
    source=_src("MambaForCausalLM", "MambaConfig") + " (slow path, no CUDA kernels)",
    requires=HF,
)
def hf_mamba():
    import transformers

    cfg = transformers.MambaConfig(vocab_size=VOCAB, hidden_size=32, state_size=8, num_hidden_layers=2,
                                   expand=2, conv_kernel=4, time_step_rank=4)  # fmt: skip
    return transformers.MambaForCausalLM(cfg).eval(), (), {"input_ids": _ids(), "use_cache": False}


# ------------------------------------------------------------------------------------------------------
# encoder-decoders


@register("hf_t5", tags="hf nlp seq2seq", source=_src("T5ForConditionalGeneration", "T5Config"), requires=HF)
def hf_t5():
    cfg = dict(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0)  # fmt: skip
    return _text("T5ForConditionalGeneration", "T5Config", cfg, eager=True, input_ids=_ids(), decoder_input_ids=_ids(5),
                 use_cache=False)  # fmt: skip


@register(
    "hf_bart", tags="hf nlp seq2seq", source=_src("BartForConditionalGeneration", "BartConfig"), requires=HF
)
def hf_bart():
    cfg = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64)  # fmt: skip
    return _text("BartForConditionalGeneration", "BartConfig", cfg, eager=True, input_ids=_ids(), labels=_ids(5),
                 use_cache=False)  # fmt: skip


@register("hf_marian", tags="hf nlp seq2seq", source=_src("MarianMTModel", "MarianConfig"), requires=HF)
def hf_marian():
    cfg = dict(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
               pad_token_id=1, decoder_start_token_id=1)  # fmt: skip
    return _text("MarianMTModel", "MarianConfig", cfg, eager=True, input_ids=_ids(), decoder_input_ids=_ids(5),
                 use_cache=False)  # fmt: skip


@register(
    "hf_pegasus",
    tags="hf nlp seq2seq",
    source=_src("PegasusForConditionalGeneration", "PegasusConfig"),
    requires=HF,
)
def hf_pegasus():
    cfg = dict(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64)  # fmt: skip
    return _text("PegasusForConditionalGeneration", "PegasusConfig", cfg, eager=True, input_ids=_ids(),
                 decoder_input_ids=_ids(5), use_cache=False)  # fmt: skip


@register(
    "hf_whisper", tags="hf audio seq2seq conv",
    source=_src("WhisperForConditionalGeneration", "WhisperConfig"), requires=HF,
)  # fmt: skip
def hf_whisper():
    import transformers

    cfg = transformers.WhisperConfig(
        vocab_size=VOCAB, num_mel_bins=16, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
        max_source_positions=16, max_target_positions=32, decoder_start_token_id=1, pad_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "eager"  # see _causal
    model = transformers.WhisperForConditionalGeneration(cfg).eval()
    return (
        model,
        (),
        {
            "input_features": torch.randn(2, 16, 32),
            "decoder_input_ids": _ids(5),
            "decoder_attention_mask": torch.ones(2, 5, dtype=torch.long),  # see _causal
            "use_cache": False,
        },
    )


# ------------------------------------------------------------------------------------------------------
# vision


def _vision(cls: str, config: str, cfg: dict, size: int = 32, channels: int = 3, *, train: bool = False):
    return _text(cls, config, cfg, train=train, pixel_values=torch.randn(2, channels, size, size))


@register(
    "hf_vit", tags="hf vision classifier", source=_src("ViTForImageClassification", "ViTConfig"), requires=HF
)
def hf_vit():
    cfg = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, num_labels=3)  # fmt: skip
    return _vision("ViTForImageClassification", "ViTConfig", cfg)


@register(
    "hf_deit",
    tags="hf vision classifier",
    source=_src("DeiTForImageClassificationWithTeacher", "DeiTConfig"),
    requires=HF,
)
def hf_deit():
    cfg = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, num_labels=3)  # fmt: skip
    return _vision("DeiTForImageClassificationWithTeacher", "DeiTConfig", cfg)


@register(
    "hf_beit",
    tags="hf vision classifier relative_position",
    source=_src("BeitForImageClassification", "BeitConfig"),
    requires=HF,
)
def hf_beit():
    cfg = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37, num_labels=3, use_relative_position_bias=True)  # fmt: skip
    return _vision("BeitForImageClassification", "BeitConfig", cfg)


@register("hf_dinov2", tags="hf vision", source=_src("Dinov2Model", "Dinov2Config"), requires=HF)
def hf_dinov2():
    cfg = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               mlp_ratio=2)  # fmt: skip
    return _vision("Dinov2Model", "Dinov2Config", cfg)


@register(
    "hf_swin",
    tags="hf vision classifier windows",
    source=_src("SwinForImageClassification", "SwinConfig"),
    requires=HF,
)
def hf_swin():
    cfg = dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4,
               num_labels=3)  # fmt: skip
    return _vision("SwinForImageClassification", "SwinConfig", cfg)


@register(
    "hf_convnext",
    tags="hf vision classifier conv",
    source=_src("ConvNextForImageClassification", "ConvNextConfig"),
    requires=HF,
)
def hf_convnext():
    cfg = dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    return _vision("ConvNextForImageClassification", "ConvNextConfig", cfg)


@register(
    "hf_resnet",
    tags="hf vision classifier conv batchnorm",
    source=_src("ResNetForImageClassification", "ResNetConfig"),
    requires=HF,
)
def hf_resnet():
    cfg = dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3)
    return _vision("ResNetForImageClassification", "ResNetConfig", cfg)


@register(
    "hf_resnet_train", tags="hf vision classifier conv batchnorm train",
    source=_src("ResNetForImageClassification", "ResNetConfig") + " (bottleneck) in train mode: BatchNorm "
    "updates its running statistics, which trace must put back",
    requires=HF,
)  # fmt: skip
def hf_resnet_train():
    cfg = dict(embedding_size=8, hidden_sizes=[16, 32], depths=[1, 1], layer_type="bottleneck", num_labels=3)
    return _vision("ResNetForImageClassification", "ResNetConfig", cfg, train=True)


@register(
    "hf_regnet",
    tags="hf vision classifier conv",
    source=_src("RegNetForImageClassification", "RegNetConfig"),
    requires=HF,
)
def hf_regnet():
    cfg = dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8, num_labels=3)
    return _vision("RegNetForImageClassification", "RegNetConfig", cfg)


@register(
    "hf_mobilenet_v2",
    tags="hf vision classifier conv",
    source=_src("MobileNetV2ForImageClassification", "MobileNetV2Config"),
    requires=HF,
)
def hf_mobilenet_v2():
    cfg = dict(image_size=32, depth_multiplier=0.25, min_depth=4, finegrained_output=False, num_labels=3)
    return _vision("MobileNetV2ForImageClassification", "MobileNetV2Config", cfg)


@register(
    "hf_efficientnet",
    tags="hf vision classifier conv",
    source=_src("EfficientNetForImageClassification", "EfficientNetConfig"),
    requires=HF,
)
def hf_efficientnet():
    cfg = dict(image_size=32, width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=128, num_labels=3)
    return _vision("EfficientNetForImageClassification", "EfficientNetConfig", cfg)


@register(
    "hf_mobilevit",
    tags="hf vision classifier conv attention",
    source=_src("MobileViTForImageClassification", "MobileViTConfig"),
    requires=HF,
)
def hf_mobilevit():
    cfg = dict(image_size=32, patch_size=2, hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 16, 16, 16, 32, 32],
               num_attention_heads=2, num_labels=3)  # fmt: skip
    return _vision("MobileViTForImageClassification", "MobileViTConfig", cfg)


@register(
    "hf_segformer",
    tags="hf vision segmentation",
    source=_src("SegformerForSemanticSegmentation", "SegformerConfig"),
    requires=HF,
)
def hf_segformer():
    # transformers installs its output-recording forward hooks on a model's first call (they stay, and no
    # later call adds more): one plain forward pass first, so that the check sees only what trace does
    cfg = dict(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], patch_sizes=[7, 3],
               strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2], decoder_hidden_size=16,
               num_labels=3)  # fmt: skip
    model, args, kwargs = _vision("SegformerForSemanticSegmentation", "SegformerConfig", cfg)
    with torch.no_grad():
        model(**kwargs)
    return model, args, kwargs


@register(
    "hf_clip", tags="hf vision nlp multimodal",
    source=_src("CLIPModel", "CLIPConfig") + "; text and vision towers, contrastive logits", requires=HF,
)  # fmt: skip
def hf_clip():
    import transformers

    text = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=16, pad_token_id=0, bos_token_id=1,
                eos_token_id=2)  # fmt: skip
    vision = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4)  # fmt: skip
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    model = transformers.CLIPModel(cfg).eval()
    return model, (), {"input_ids": _ids(), "pixel_values": torch.randn(2, 3, 32, 32)}


# ------------------------------------------------------------------------------------------------------
# audio


def _audio_cfg() -> dict:
    return dict(vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=37, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
                num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip


@register(
    "hf_wav2vec2", tags="hf audio conv parametrization",
    source=_src("Wav2Vec2ForCTC", "Wav2Vec2Config") + "; its positional conv carries weight_norm",
    requires=HF,
)  # fmt: skip
def hf_wav2vec2():
    return _text("Wav2Vec2ForCTC", "Wav2Vec2Config", _audio_cfg(), input_values=torch.randn(2, 400))


@register(
    "hf_hubert", tags="hf audio conv parametrization", source=_src("HubertModel", "HubertConfig"), requires=HF
)
def hf_hubert():
    return _text("HubertModel", "HubertConfig", _audio_cfg(), input_values=torch.randn(2, 400))


@register(
    "hf_wavlm", tags="hf audio conv relative_position", source=_src("WavLMModel", "WavLMConfig"), requires=HF
)
def hf_wavlm():
    cfg = _audio_cfg() | dict(num_buckets=16, max_bucket_distance=32)
    return _text("WavLMModel", "WavLMConfig", cfg, input_values=torch.randn(2, 400))


@register(
    "hf_ast", tags="hf audio vision", source=_src("ASTForAudioClassification", "ASTConfig"), requires=HF
)
def hf_ast():
    cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, patch_size=8,
               frequency_stride=8, time_stride=8, max_length=32, num_mel_bins=16, num_labels=3)  # fmt: skip
    return _text("ASTForAudioClassification", "ASTConfig", cfg, input_values=torch.randn(2, 32, 16))
