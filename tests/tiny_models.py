"""Tiny random transformers models of every model type the loader supports, built offline from
configs in milliseconds. Shared by the loader tests; not a test module itself.

Every text decoder here has ``HIDDEN`` = 32 and ``LAYERS`` = 3 blocks (Mllama: block 1 is a
cross-attention block, as in the real model), so one pack shape fits them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import transformers
from packaging.version import Version
from tiny_families import CANNOT_RUN, FAMILIES, tiny_config
from transformers.models.auto import configuration_auto, modeling_auto

HIDDEN, LAYERS, VOCAB = 32, 3, 128
PAD = 0
transformers_version = Version(transformers.__version__)
# transformers-native InternVL (InternVLForConditionalGeneration) first shipped in 4.52.
HAS_INTERNVL = transformers_version >= Version("4.52")

# Special tokens of the VLMs, inside the tiny vocabulary.
IMAGE, VIDEO, VISION_START, VISION_END = 120, 121, 122, 123

_TEXT = dict(
    vocab_size=VOCAB,
    hidden_size=HIDDEN,
    intermediate_size=64,
    num_hidden_layers=LAYERS,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    pad_token_id=PAD,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)
_VIT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)


def _text(**extra: Any) -> dict[str, Any]:
    return {**_TEXT, **extra}


def _llama() -> Any:
    return transformers.LlamaConfig(**_text())


def _qwen2() -> Any:
    return transformers.Qwen2Config(**_text())


def _mistral() -> Any:
    return transformers.MistralConfig(**_text(sliding_window=None))


def _phi3() -> Any:
    return transformers.Phi3Config(**_text())


def _gemma2() -> Any:
    return transformers.Gemma2Config(**_text(head_dim=8))


def _gpt2() -> Any:
    return transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=4, n_positions=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=PAD,
    )


def _qwen_vl_tokens() -> dict[str, Any]:
    return dict(
        image_token_id=IMAGE, video_token_id=VIDEO,
        vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
        rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
    )


def _qwen2_vl() -> Any:
    vision = dict(depth=1, embed_dim=16, hidden_size=HIDDEN, num_heads=2, mlp_ratio=2,
                  patch_size=2, spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
    return transformers.Qwen2VLConfig(**_text(), **_qwen_vl_tokens(), vision_config=vision)


def _qwen2_5_vl() -> Any:
    vision = dict(depth=1, hidden_size=16, out_hidden_size=HIDDEN, intermediate_size=32,
                  num_heads=2, patch_size=2, spatial_merge_size=2, temporal_patch_size=2,
                  in_channels=3, window_size=8, fullatt_block_indexes=[0])
    return transformers.Qwen2_5_VLConfig(**_text(), **_qwen_vl_tokens(), vision_config=vision)


def _clip() -> dict[str, Any]:
    return dict(model_type="clip_vision_model", **_VIT, image_size=8, patch_size=4,
                projection_dim=16)


def _llava() -> Any:
    return transformers.LlavaConfig(
        vision_config=_clip(), text_config=dict(model_type="llama", **_text()),
        image_token_index=IMAGE, image_seq_length=4, vision_feature_layer=-1,
    )


def _llava_next() -> Any:
    return transformers.LlavaNextConfig(
        vision_config=_clip(), text_config=dict(model_type="llama", **_text()),
        image_token_index=IMAGE, image_grid_pinpoints=[[8, 8]], vision_feature_layer=-1,
    )


def _idefics3_like(config_class: type) -> Any:
    return config_class(
        vision_config=dict(**_VIT, image_size=8, patch_size=4),
        text_config=dict(model_type="llama", **_text()),
        image_token_id=IMAGE, scale_factor=2, pad_token_id=PAD,
    )


def _gemma3() -> Any:
    return transformers.Gemma3Config(
        text_config=dict(model_type="gemma3_text", **_text(head_dim=8, sliding_window=64)),
        vision_config=dict(model_type="siglip_vision_model", **_VIT, image_size=8, patch_size=2),
        mm_tokens_per_image=4, boi_token_index=VISION_START, eoi_token_index=VISION_END,
        image_token_index=IMAGE,
    )


def _paligemma() -> Any:
    return transformers.PaliGemmaConfig(
        text_config=dict(model_type="gemma", **_text(head_dim=8)),
        vision_config=dict(model_type="siglip_vision_model", **_VIT, image_size=8, patch_size=4),
        image_token_index=IMAGE, projection_dim=HIDDEN, hidden_size=HIDDEN,
    )


def _mllama() -> Any:
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_global_layers=1,
                  attention_heads=2, image_size=8, patch_size=4, max_num_tiles=1,
                  intermediate_layers_indices=[0], vision_output_dim=32,
                  supported_aspect_ratios=[[1, 1]])
    text = dict(_text(), cross_attention_layers=[1], rope_scaling={"rope_type": "default"})
    return transformers.MllamaConfig(vision_config=vision, text_config=text,
                                     image_token_index=IMAGE)


def _internvl() -> Any:
    return transformers.InternVLConfig(
        vision_config=dict(**_VIT, image_size=8, patch_size=4),
        text_config=dict(model_type="qwen2", **_text()),
        image_token_id=IMAGE, image_seq_length=1, downsample_ratio=0.5,
    )


CONFIGS: dict[str, Callable[[], Any]] = {
    "llama": _llama,
    "qwen2": _qwen2,
    "mistral": _mistral,
    "phi3": _phi3,
    "gemma2": _gemma2,
    "gpt2": _gpt2,
    "qwen2_vl": _qwen2_vl,
    "qwen2_5_vl": _qwen2_5_vl,
    "llava": _llava,
    "llava_next": _llava_next,
    "idefics3": lambda: _idefics3_like(transformers.Idefics3Config),
    "smolvlm": lambda: _idefics3_like(transformers.SmolVLMConfig),
    "gemma3": _gemma3,
    "paligemma": _paligemma,
    "mllama": _mllama,
    "internvl": _internvl,
    # Every other image-text-to-text family of the block table, from its default config.
    **{name: (lambda name=name: tiny_config(name)) for name in FAMILIES},
}
VLMS = ("qwen2_vl", "qwen2_5_vl", "llava", "llava_next", "idefics3", "smolvlm", "gemma3",
        "paligemma", "mllama", "internvl", *FAMILIES)


def model_type_params(skips: dict[str, tuple[bool, str]] | None = None) -> list[Any]:
    """Every model type as a pytest param. Types missing from this transformers, families that
    cannot run here (tiny_families.CANNOT_RUN), and ``skips`` (model type ->
    (condition, reason)) are marked skip with the condition that explains why: never a silent
    skip."""
    import pytest

    reasons: dict[str, list[tuple[bool, str]]] = {name: [] for name in CONFIGS}
    for name in CONFIGS:
        if name not in configuration_auto.CONFIG_MAPPING_NAMES:
            reasons[name].append((True, f"transformers {transformers_version} has no model type "
                                  f"{name!r}"))
    reasons["internvl"].append((not HAS_INTERNVL, "transformers-native InternVL needs "
                                f"transformers>=4.52, have {transformers_version}"))
    for name, reason in [*CANNOT_RUN.items(), *(skips or {}).items()]:
        reasons[name].append(reason)
    return [pytest.param(name, marks=[pytest.mark.skipif(c, reason=r) for c, r in reasons[name]])
            for name in CONFIGS]


def build(model_type: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random model with an LM head (fp32, eval mode, eager attention)."""
    config = CONFIGS[model_type]()
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    cls = transformers.AutoModelForCausalLM
    if model_type in modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        cls = transformers.AutoModelForImageTextToText
    elif model_type in VLMS:  # transformers 4.51 lists the video LLaVAs as vision-to-text only
        cls = transformers.AutoModelForVision2Seq
    model = cls.from_config(config).eval()
    if model_type == "llama4" and transformers_version < Version("5"):
        # transformers 4.51's Llama 4 _init_weights skips its experts' weights (torch.empty:
        # garbage up to ~1e25, so forwards of one input can differ): drawn here as it draws the
        # rest, normal(0, initializer_range).
        std = config.get_text_config().initializer_range
        with torch.no_grad():
            for name, param in model.named_parameters():
                if ".experts." in name and param.ndim == 3:
                    param.normal_(0.0, std)
    return model


def forward_options(model_type: str) -> dict[str, Any]:
    """What a plain forward (outside generate) of the family needs to run unpatched: transformers
    4.51's Llama 4 makes its own cache in bfloat16 whatever the model's dtype, and its fp32
    attention then fails; without a cache it runs (generate makes a cache of the model's dtype)."""
    if model_type == "llama4" and transformers_version < Version("5"):
        return {"use_cache": False}
    return {}


# Families whose forward needs an image: the image tokens a prompt of theirs starts with, as their
# processors lay them out. IDEFICS: <fake_token_around_image> <image> <fake_token_around_image>,
# every token from <image> on attending to the image; Kosmos-2: <image>, latent_query_num (4)
# placeholders that the image's embeddings replace, </image>; BLIP-2 / InstructBLIP: the
# num_query_tokens (4) placeholders whose embeddings the query outputs replace, before the text;
# InstructBLIPVideo: 4 per frame of a 2-frame video.
IMAGE_PREFIX: dict[str, list[int]] = {
    "idefics": [VISION_START, IMAGE, VISION_END],
    "kosmos-2": [VISION_START, *[IMAGE] * 4, VISION_END],
    "blip-2": [IMAGE] * 4,
    "instructblip": [IMAGE] * 4,
    "instructblipvideo": [VIDEO] * 8,
}
# InstructBLIP's Q-Former reads an instruction too: the same two tokens for every prompt.
QFORMER_INSTRUCTION = [7, 8]


def with_image(model_type: str, prompt: list[int]) -> list[int]:
    """``prompt`` behind the family's image tokens where its forward needs an image; as it is
    for every other family (their checks stay text-only)."""
    return [*IMAGE_PREFIX.get(model_type, []), *prompt]


def image_inputs(model_type: str, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> dict[str, Any]:
    """What the forward (and generate) of a family in ``IMAGE_PREFIX`` needs besides the tokens,
    for prompts made by ``with_image`` (left-padded or not; ``attention_mask`` flags the real
    tokens); {} for every other family. Each row gets one 8x8 image (InstructBLIPVideo: 2 frames)
    drawn from its own real tokens, so a prompt sees the same image alone and in a batch."""
    if model_type not in IMAGE_PREFIX:
        return {}
    video = model_type == "instructblipvideo"
    token = VIDEO if video else IMAGE
    real = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    assert bool(((input_ids == token) & (real != 0)).sum(1).eq(
        IMAGE_PREFIX[model_type].count(token)).all()), "each row needs the family's image tokens"
    pixels = torch.stack([  # [batch, frames, 3, 8, 8]
        torch.randn(2 if video else 1, 3, 8, 8,
                    generator=torch.Generator().manual_seed(int((row * keep).sum())))
        for row, keep in zip(input_ids, real, strict=True)
    ])
    if model_type == "idefics":  # [batch, images, ...] and which images each token attends to
        seen = ((input_ids == IMAGE) & (real != 0)).long().cumsum(1)
        return {"pixel_values": pixels,
                "image_attention_mask": (seen > 0).long()[..., None]}
    if model_type == "kosmos-2":  # the positions the image's latent_query_num embeddings replace
        return {"pixel_values": pixels[:, 0],
                "image_embeds_position_mask": (input_ids == IMAGE).long()}
    inputs: dict[str, Any] = {"pixel_values": pixels if video else pixels[:, 0]}
    if model_type != "blip-2":
        inputs["qformer_input_ids"] = torch.tensor([QFORMER_INSTRUCTION] * len(input_ids))
    return inputs


def _roomy_hybrid_cache(model: torch.nn.Module, batch: int) -> Any | None:
    """transformers < 4.52 sizes Gemma2/Gemma3/Cohere2's HybridCache to the exact generation length and
    then gets the last step wrong even unpatched; a larger cache of the same kind avoids that
    bug and keeps the 4D-mask code path of those versions under test."""
    # ShieldGemma 2 is a Gemma 3; Aya Vision's text model (Cohere2) has the same HybridCache.
    hybrid = ("gemma2", "gemma3", "shieldgemma2", "aya_vision")
    if transformers_version >= Version("4.52") or model.config.model_type not in hybrid:
        return None
    return transformers.HybridCache(model.config.get_text_config(), max_batch_size=batch,
                                    max_cache_len=128)


def generate(model: torch.nn.Module, input_ids: torch.Tensor,
             attention_mask: torch.Tensor | None = None, *, new_tokens: int = 5,
             use_cache: bool = True, **inputs: Any) -> Any:
    """Greedy generation of exactly ``new_tokens`` tokens, returning sequences and logits."""
    kwargs: dict[str, Any] = dict(
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
        use_cache=use_cache, output_logits=True, return_dict_in_generate=True, pad_token_id=PAD,
    )
    cache = _roomy_hybrid_cache(model, input_ids.shape[0]) if use_cache else None
    if cache is not None:
        kwargs.update(past_key_values=cache, cache_implementation=None)
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    # By name: Kosmos-2's generate takes pixel_values first.
    return model.generate(input_ids=input_ids, **kwargs, **inputs)


def left_pad(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A left-padded batch: input_ids and attention_mask."""
    width = max(map(len, prompts))
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def qwen2_vl_image_inputs(input_ids: torch.Tensor, model: torch.nn.Module,
                          seeds: list[int]) -> dict[str, Any]:
    """pixel_values / image_grid_thw for the images in ``input_ids``, image k drawn with seed
    seeds[k]. A 4x4-patch image is 4 image tokens after the 2x2 merge; each row of pixel_values
    is one patch (channels x temporal x patch x patch values), as Qwen2VLImageProcessor lays
    them out. transformers 5.x also needs mm_token_type_ids when no processor made the inputs."""
    assert int((input_ids == IMAGE).sum()) == 4 * len(seeds)
    pixels = [torch.randn(16, 3 * 2 * 2 * 2, generator=torch.Generator().manual_seed(s))
              for s in seeds]
    inputs: dict[str, Any] = {
        "pixel_values": torch.cat(pixels),
        "image_grid_thw": torch.tensor([[1, 4, 4]] * len(seeds)),
    }
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:
        inputs["mm_token_type_ids"] = (input_ids == IMAGE).long()
    return inputs
