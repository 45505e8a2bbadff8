"""Tiny configs of the image-text-to-text families in the loader's block table, made from
transformers' default config of each type: the text decoder shrunk to the shape of
tests/tiny_models.py (hidden 32, 3 blocks, vocabulary 128), every other sub-config (vision, audio,
...) to one narrow layer, and every special token id moved inside the vocabulary. Where the generic
shrink does not give a model that builds and runs, ``OVERRIDES`` says what each family needs,
explicitly. Not a test module itself.
"""

from __future__ import annotations

import copy
from typing import Any

import transformers
from packaging.version import Version

HIDDEN, LAYERS, VOCAB = 32, 3, 128
PAD, BOS, EOS = 0, 1, 2
IMAGE, VIDEO, VISION_START, VISION_END = 120, 121, 122, 123
# Other special ids (audio, begin/end of image, ...) get distinct ids from here up, away from the
# test prompts' tokens (5..18).
_FREE_IDS = range(100, 120)

# Set wherever the default text config has the field: the shape of tests/tiny_models.py, MoE with
# 4 experts, multi-head latent attention, linear attention and Mamba heads of the same width.
TEXT = dict(
    vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=LAYERS,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
    tie_word_embeddings=False, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
    moe_intermediate_size=32, shared_expert_intermediate_size=32,
    moe_shared_expert_intermediate_size=32, intermediate_size_mlp=64, num_experts=4,
    n_routed_experts=4, num_local_experts=4, num_experts_per_tok=2, top_k_experts=2,
    n_shared_experts=1, n_group=1, topk_group=1, first_k_dense_replace=1,
    kv_lora_rank=16, q_lora_rank=16, qk_rope_head_dim=4, qk_nope_head_dim=4, qk_head_dim=8,
    v_head_dim=8, linear_key_head_dim=8, linear_value_head_dim=8, linear_num_key_heads=2,
    linear_num_value_heads=4, ssm_state_size=8, mamba_num_heads=8, mamba_head_dim=8, n_groups=1,
    moe_hidden_size=32, chunk_size=16, hidden_size_per_layer_input=8,
    vocab_size_per_layer_input=VOCAB,
)
# Set wherever a non-text sub-config (vision, audio, perceiver, ...) has the field.
OTHER = dict(
    hidden_size=16, intermediate_size=32, num_hidden_layers=1, depth=1, num_layers=1,
    num_attention_heads=2, num_heads=2, num_key_value_heads=2, embed_dim=16, out_hidden_size=HIDDEN,
    d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32, n_layers=1,
    head_dim=8, text_hidden_size=HIDDEN,
)
# Set wherever the top level of a composite config has the field (projector widths, and the copy
# of the text sizes some VLM configs keep).
TOP = dict(vocab_size=VOCAB, hidden_size=HIDDEN, projector_hidden_size=HIDDEN,
           vision_hidden_size=16, out_hidden_size=HIDDEN)
_NAMED_IDS = {
    "image_token_id": IMAGE, "image_token_index": IMAGE, "video_token_id": VIDEO,
    "video_token_index": VIDEO, "vision_start_token_id": VISION_START,
    "vision_end_token_id": VISION_END,
}
_KEEP_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id")

# Per family, after the generic shrink: nested updates of the config dict ("text_config",
# "vision_config", ... or top-level keys); a sub-config's fields are merged, any other value
# replaced. Each entry says why.
_MROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}
_HYBRID = ["linear_attention", "full_attention", "linear_attention"]
# A VQ image tokenizer: 32 channels (its GroupNorm has 32 groups), one block per level.
_VQ = {"base_channels": 32, "latent_channels": 32, "embed_dim": 8, "num_res_blocks": 1}
_SMALL_IMAGE = {"image_size": 8, "patch_size": 4}
_KOSMOS_TEXT = {"embed_dim": HIDDEN, "layers": LAYERS, "ffn_dim": 64, "attention_heads": 4}
# OPT learns its positions: room for the neutral text that patch() measures s_i on (one token per
# character here).
_OPT_TEXT = {"ffn_dim": 64, "word_embed_proj_dim": HIDDEN, "max_position_embeddings": 1024}
OVERRIDES: dict[str, dict[str, Any]] = {
    # M-RoPE sections must sum to half the rotary width (head_dim 8); these models default to
    # sections of a 128-wide head.
    **{t: {"text_config": {"rope_parameters": _MROPE}}
       for t in ("cosmos3_edge", "glm4v", "glm46v", "glm_ocr", "glmga", "paddleocr_vl")},
    "ernie4_5_vl_moe": {"text_config": {
        "rope_parameters": _MROPE, "moe_intermediate_size": [32, 16], "moe_num_experts": 4,
        "moe_k": 2, "moe_num_shared_experts": 1}},  # its own names for the MoE sizes
    # Half the head is rotary: a 16-wide head leaves 4 rotary pairs for the 3 sections.
    "glm4v_moe": {"text_config": {"head_dim": 16, "rope_parameters": {
        **_MROPE, "partial_rotary_factor": 0.5}}},
    # Real Omni checkpoints set the vision start id, which generate's M-RoPE index reads; the
    # default config lacks it.
    "qwen2_5_omni_thinker": {"text_config": {"rope_parameters": _MROPE},
                             "vision_start_token_id": VISION_START},
    "qwen3_omni_moe_thinker": {"vision_start_token_id": VISION_START},
    # DeepSeek-V3 attention applies RoPE over head_dim, which must be the rotary part.
    "kimi_k25": {"text_config": {"head_dim": 4}},
    # Per-layer exceptions name layers of the full depth: one wider global layer (the last).
    "gemma4": {"text_config": {"per_layer_config": {"02": {"head_dim": 16}}}},
    "gemma4_unified": {"text_config": {"per_layer_config": {"02": {"head_dim": 16}}}},
    "dots3_note": {"text_config": {"per_layer_config": {"02": {"kv_lora_rank": 32}}},
                   "vision_config": {"per_layer_config": {}, "adapter_in_dim": 16,
                                     "adapter_out_dim": HIDDEN},
                   "audio_config": {"adapter_input_size": 16, "adapter_out_dim": HIDDEN}},
    # Hybrid decoders keep both kinds of layer (the default's first 3 are all linear attention).
    **{t: {"text_config": {"layer_types": _HYBRID}}
       for t in ("qwen3_5", "qwen3_5_moe", "minicpm_ocr", "minicpmv4_6", "minicpmv4_7")},
    # Its depth is the length of its block pattern (4 in the default): Mamba, attention, MoE.
    "nemotron_h_omni": {"text_config": {
        "layers_block_type": ["linear_attention", "full_attention", "moe"]}},
    # The default has no sliding window for its sliding-attention heads.
    "step3p7": {"text_config": {"sliding_window": 64, "num_sliding_attention_heads": 4}},
    # Image and audio tokens are id ranges at the end of the vocabulary; WavTokenizer has no
    # projection around its quantizer, so codebook_dim is its width.
    "apertus1p5": {"image_token_offset": 64, "audio_token_offset": 96,
                   "vision_config": {"codebook_size": 32, **_VQ},
                   "audio_config": {"codebook_dim": 16, "codebook_size": 32}},
    "janus": {"vq_config": {**_VQ, "num_embeddings": 32, "projection_dim": HIDDEN,
                            "image_token_embed_dim": 16}},
    # Kosmos text configs name their sizes fairseq's way. IDEFICS and Kosmos-2 run on an image
    # (tests/tiny_models.py, image_inputs): an 8x8 one of 2x2 patches, not the default 224x224.
    "kosmos-2": {"text_config": _KOSMOS_TEXT, "latent_query_num": 4, "vision_config": _SMALL_IMAGE},
    "idefics": {"vision_config": _SMALL_IMAGE},
    "kosmos-2.5": {"text_config": _KOSMOS_TEXT, "latent_query_num": 4},
    # BLIP-2 / InstructBLIP: OPT names its sizes its own way; 4 query tokens, whose outputs
    # replace the 4 placeholders (image_token_index; InstructBLIPVideo: video_token_index, 4 per
    # frame) its processor puts before the text; the default config has no placeholder id.
    **{t: {"text_config": _OPT_TEXT, "vision_config": _SMALL_IMAGE, "num_query_tokens": 4,
           "image_token_index": IMAGE} for t in ("blip-2", "instructblip")},
    "instructblipvideo": {"text_config": _OPT_TEXT, "vision_config": _SMALL_IMAGE,
                          "num_query_tokens": 4, "video_token_index": VIDEO},
    "inkling2": {"text_config": {"unpadded_vocab_size": VOCAB}},
    "inkling2_loop": {"text_config": {"unpadded_vocab_size": VOCAB}},
    "molmo2": {"adapter_config": {"vision_feature_layer": [-1]}},  # an index into 1 vision layer
    # Refused (hyper-connections), built for the refusal tests: M-RoPE over a 4-wide rotary part;
    # indexed-attention layers with the QSA indexer sizes Qwen4-Exp's default lacks.
    "hy_v4_vl": {"text_config": {"rope_parameters": {**_MROPE, "mrope_section": [1, 0, 1]}}},
    "qwen4_exp": {"text_config": {
        "layer_types": ["linear_attention", "indexed_attention", "linear_attention"],
        "indexer_n_heads": 2, "indexer_kv_heads": 1, "indexer_head_dim": 8, "indexer_budget": 4,
        "indexer_compress_ratio": 2}},
    "glm5_next": {"text_config": {
        "layer_types": ["linear_attention", "indexed_attention", "linear_attention"],
        "mlp_layer_types": ["dense", "sparse", "sparse"]}},
}


transformers_version = Version(transformers.__version__)

# The block table's image-text-to-text families built here, beyond the hand-written configs of
# tests/tiny_models.py (transformers 5.24's list; model_type_params skips the ones an older
# transformers lacks).
FAMILIES = (
    "apertus1p5", "aria", "aya_vision", "blip-2", "cohere2_vision", "cosmos3_edge", "cosmos3_omni",
    "deepseek_vl", "deepseek_vl_hybrid", "dots3_note", "ernie4_5_vl_moe", "exaone4_5", "fuyu",
    "gemma4", "gemma4_unified", "glm46v", "glm4v", "glm4v_moe", "glm_ocr", "glmga", "got_ocr2",
    "granite_docling", "hyperclovax_vision_v2", "idefics", "idefics2", "inkling2", "inkling2_loop",
    "inkling_mm_model", "instructblip", "instructblipvideo", "janus", "kimi_k25", "kosmos-2",
    "kosmos-2.5", "lfm2_vl", "lfm3_vl", "lighton_ocr", "llama4", "llava_next_video",
    "llava_onevision", "minicpm_ocr", "minicpmv4_6", "minicpmv4_7", "minimax_m3_vl", "mistral3",
    "mistral4", "mistral_large4", "molmo2", "muse_glimmer", "muse_spark", "nemotron_h_omni",
    "ovis2", "paddleocr_vl", "pp_chart2table", "qianfan_ocr", "qwen2_5_omni_thinker", "qwen3_5",
    "qwen3_5_moe", "qwen3_omni_moe_thinker", "qwen3_vl", "qwen3_vl_moe", "shieldgemma2", "step3p7",
    "unlimited_ocr", "video_llama_3", "video_llava", "vipllava",
)


# Families whose tiny model builds but cannot run the behaviour checks, for a reason outside
# l2v-hub: model type -> (condition, reason). Their block path is still checked on the model's
# structure (tests/test_loader_families.py). (IDEFICS and Kosmos-2, whose forward needs an image,
# run them with one: tests/tiny_models.py, image_inputs; Llama 4 runs on transformers 4.51 with
# the workarounds of tests/tiny_models.py, build and forward_options.)
CANNOT_RUN: dict[str, tuple[bool, str]] = {
    "llama4": (transformers_version >= Version("5"), f"transformers {transformers_version}'s "
               "Llama4ForConditionalGeneration reads outputs.image_outputs, which its language "
               "model's output lacks: every forward raises AttributeError, unpatched too (also "
               "with return_dict=False)"),
}


def _is_token_id(key: str) -> bool:
    return key.endswith(("token_id", "token_index")) and key not in _KEEP_IDS


def _shrink(sub: dict[str, Any], sizes: dict[str, Any], ids: dict[str, int]) -> None:
    """Shrink ``sub`` in place: the ``sizes`` fields it has, its per-layer lists cut to the new
    depth, its special token ids moved inside the vocabulary (the same id for the same name)."""
    depth = next((sub[k] for k in ("num_hidden_layers", "depth", "num_layers")
                  if isinstance(sub.get(k), int)), None)
    # A model with as many key/value heads as query heads (MHA, latent attention) stays so.
    mha = sub.get("num_key_value_heads") == sub.get("num_attention_heads")
    for key, value in list(sub.items()):
        if value == 0 and key not in _KEEP_IDS:  # a size of 0 turns a feature off: keep it off
            continue
        if key == "num_key_value_heads" and mha and isinstance(value, int):
            sub[key] = sizes.get("num_attention_heads", value)
        elif key in sizes and (isinstance(value, int) or (value is None and key in _KEEP_IDS)):
            sub[key] = sizes[key]
        elif isinstance(value, list) and depth and len(value) == depth and depth > 1:
            sub[key] = value[:sizes.get("num_hidden_layers", LAYERS)]
        elif isinstance(value, dict) and "model_type" in value:  # a nested sub-config
            _shrink(value, OTHER, ids)
        elif _is_token_id(key) and isinstance(value, int):
            if key not in ids:
                ids[key] = _NAMED_IDS.get(key) or _FREE_IDS[len(ids)]
            sub[key] = ids[key]


def _update(target: dict[str, Any], updates: dict[str, Any]) -> None:
    for key, value in updates.items():
        if isinstance(value, dict) and "model_type" in target.get(key, {}):  # a sub-config
            _update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def tiny_config(model_type: str) -> Any:
    """The tiny config of ``model_type``: transformers' default, shrunk, then ``OVERRIDES``."""
    default = transformers.AutoConfig.for_model(model_type)
    data = default.to_dict()
    text = default.get_text_config()
    text_key = next((k for k, v in vars(default).items() if v is text), None)  # None: top level
    ids: dict[str, int] = {}
    if text_key:  # the text config, then the rest (vision, ..., top-level ids and widths)
        text_data = data.pop(text_key)
        _shrink(text_data, TEXT, ids)
        _shrink(data, TOP, ids)
        data[text_key] = text_data
    else:  # the text fields are the top level
        _shrink(data, TEXT, ids)
    _update(data, OVERRIDES.get(model_type, {}))
    return type(default).from_dict(data)
