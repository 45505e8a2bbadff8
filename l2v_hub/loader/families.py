"""Which transformers model types the loader supports, where their text decoder blocks are, and
which it refuses up front (with the reason).

``BLOCK_PATHS``: model_type -> dotted paths from the top-level model to the text decoder's block
list, newest transformers first (the 5.x path, then the 4.51 one when it differs; BLIP-2 and
InstructBLIP: one per text decoder their checkpoints run, OPT then Llama). Every
image-text-to-text type of the installed transformers is either here or in ``REFUSED``;
tests/test_loader_families.py enumerates transformers' list and fails on a type in neither, so an
upgrade cannot silently lose coverage.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

__all__ = ["BLOCK_PATHS", "ENCODER_DECODER", "NEEDS_IMAGE", "PLACEHOLDER_ID", "REFUSED", "TRACKED_AT",
           "UNVERIFIED", "no_placeholders", "text_only_inputs", "text_only_model"]

# 5.x: <Model>.model.language_model.layers; 4.51: <Model>.language_model (a ForCausalLM).model.layers
_LANGUAGE_MODEL = ("model.language_model.layers", "language_model.model.layers")
_TEXT_MODEL = ("model.text_model.layers",)
ENCODER_DECODER = ("an encoder-decoder model: its text decoder reads the encoder's output, and "
                    "the loader tracks the positions of decoder-only models; not supported")
_NOT_BUILT = ("not verified: transformers' default config for it does not build a model ({}), so "
              "no test covers it yet; the blocks are looked up through get_decoder() and the "
              "known paths, or pass layers_path=")
_TIMM = ("not verified: building it needs the timm library; the blocks are looked up through "
         "get_decoder() and the known paths, or pass layers_path=")
_HYPER_CONNECTIONS = ("its blocks carry several residual streams (hyper-connections: [batch, "
                      "tokens, streams, hidden], or the streams side by side), not the one "
                      "residual stream the loader steers; not supported")
# BLIP-2 / InstructBLIP: OPT (the BLIP-2 checkpoints) or Llama (Vicuna, the InstructBLIP ones).
_QUERY_MODEL = ("language_model.model.decoder.layers", "language_model.model.layers")

BLOCK_PATHS: dict[str, tuple[str, ...]] = {
    # Text LLMs (the builder's sources, and plain-text use).
    "llama": ("model.layers",),
    "qwen2": ("model.layers",),
    "mistral": ("model.layers",),
    "phi3": ("model.layers",),
    "gemma2": ("model.layers",),
    "mistral4": ("model.layers",),
    "gpt2": ("transformer.h",),
    # Qwen2-VL / Qwen2.5-VL: 4.51 keeps the text decoder at model.layers.
    "qwen2_vl": ("model.language_model.layers", "model.layers"),
    "qwen2_5_vl": ("model.language_model.layers", "model.layers"),
    # Mllama: the cross-attention blocks are in the list, as the model counts them.
    "apertus1p5": _LANGUAGE_MODEL,
    "aria": _LANGUAGE_MODEL,
    "aya_vision": _LANGUAGE_MODEL,
    "cohere2_vision": _LANGUAGE_MODEL,
    "cosmos3_edge": _LANGUAGE_MODEL,
    "cosmos3_omni": _LANGUAGE_MODEL,
    "deepseek_vl": _LANGUAGE_MODEL,
    "deepseek_vl_hybrid": _LANGUAGE_MODEL,
    "dots3_note": _LANGUAGE_MODEL,
    "ernie4_5_vl_moe": _LANGUAGE_MODEL,
    "exaone4_5": _LANGUAGE_MODEL,
    "fuyu": _LANGUAGE_MODEL,
    "gemma3": _LANGUAGE_MODEL,
    "gemma4": _LANGUAGE_MODEL,
    "gemma4_unified": _LANGUAGE_MODEL,
    "glm46v": _LANGUAGE_MODEL,
    "glm4v": _LANGUAGE_MODEL,
    "glm4v_moe": _LANGUAGE_MODEL,
    "glm_ocr": _LANGUAGE_MODEL,
    "glmga": _LANGUAGE_MODEL,
    "got_ocr2": _LANGUAGE_MODEL,
    "hyperclovax_vision_v2": _LANGUAGE_MODEL,
    "inkling2": _LANGUAGE_MODEL,
    "inkling2_loop": _LANGUAGE_MODEL,
    "inkling_mm_model": _LANGUAGE_MODEL,
    "internvl": _LANGUAGE_MODEL,
    "janus": _LANGUAGE_MODEL,
    "kimi_k25": _LANGUAGE_MODEL,
    "lfm2_vl": _LANGUAGE_MODEL,
    "lfm3_vl": _LANGUAGE_MODEL,
    "lighton_ocr": _LANGUAGE_MODEL,
    "llava": _LANGUAGE_MODEL,
    "llava_next": _LANGUAGE_MODEL,
    "llava_next_video": _LANGUAGE_MODEL,
    "llava_onevision": _LANGUAGE_MODEL,
    "minicpm_ocr": _LANGUAGE_MODEL,
    "minicpmv4_6": _LANGUAGE_MODEL,
    "minicpmv4_7": _LANGUAGE_MODEL,
    "minimax_m3_vl": _LANGUAGE_MODEL,
    "mistral3": _LANGUAGE_MODEL,
    "mistral_large4": _LANGUAGE_MODEL,
    "mllama": _LANGUAGE_MODEL,
    "molmo2": _LANGUAGE_MODEL,
    "muse_glimmer": _LANGUAGE_MODEL,
    "muse_spark": _LANGUAGE_MODEL,
    "ovis2": _LANGUAGE_MODEL,
    "paddleocr_vl": _LANGUAGE_MODEL,
    "paligemma": _LANGUAGE_MODEL,
    "pp_chart2table": _LANGUAGE_MODEL,
    "qianfan_ocr": _LANGUAGE_MODEL,
    "qwen2_5_omni_thinker": _LANGUAGE_MODEL,
    "qwen3_5": _LANGUAGE_MODEL,
    "qwen3_5_moe": _LANGUAGE_MODEL,
    "qwen3_omni_moe_thinker": _LANGUAGE_MODEL,
    "qwen3_vl": _LANGUAGE_MODEL,
    "qwen3_vl_moe": _LANGUAGE_MODEL,
    "shieldgemma2": _LANGUAGE_MODEL,
    "step3p7": _LANGUAGE_MODEL,
    "unlimited_ocr": _LANGUAGE_MODEL,
    "video_llama_3": _LANGUAGE_MODEL,
    "video_llava": _LANGUAGE_MODEL,
    "vipllava": _LANGUAGE_MODEL,
    "idefics": ("model.layers",),
    "idefics2": _TEXT_MODEL,
    "idefics3": _TEXT_MODEL,
    "smolvlm": _TEXT_MODEL,
    "granite_docling": _TEXT_MODEL,
    "llama4": ("language_model.model.layers",),
    "nemotron_h_omni": ("language_model.model.layers",),
    "kosmos-2": ("text_model.model.layers",),
    "kosmos-2.5": ("text_model.model.layers",),
    "blip-2": _QUERY_MODEL,
    "instructblip": _QUERY_MODEL,
    "instructblipvideo": _QUERY_MODEL,
}

# Model types whose generate runs an inner model's own generate, which never calls the top-level
# forward: the position tracker goes on that inner model (a dotted path from the top-level model),
# whose forward every forward and every generate step of the model goes through.
TRACKED_AT: dict[str, str] = {
    "kosmos-2": "text_model",  # Kosmos2ForConditionalGeneration.generate: text_model.generate
    # Blip2ForConditionalGeneration.generate (and InstructBLIP's): language_model.generate
    "blip-2": "language_model",
    "instructblip": "language_model",
    "instructblipvideo": "language_model",
}

# The query-token families: the config field naming the placeholder token that their processor
# puts num_query_tokens times per image (per frame) into input_ids, and whose input embeddings
# forward replaces by the query outputs; so the query tokens are prompt tokens like any other.
# Where the field is None, transformers 4 (4.51) joins the query outputs in front of the text
# inside forward instead (the block outputs are wider than input_ids, and generate's prompt is
# not what it was given), and 5.x fails on its own: such a model is refused (no_placeholders).
PLACEHOLDER_ID: dict[str, str] = {
    "blip-2": "image_token_index",
    "instructblip": "image_token_index",
    "instructblipvideo": "video_token_index",
}


def no_placeholders(config: Any) -> str | None:
    """Why a query-token family's ``config`` cannot be steered (None when it can, or when it is
    not one of ``PLACEHOLDER_ID``'s families): no placeholder token id."""
    field = PLACEHOLDER_ID.get(getattr(config, "model_type", None) or "")
    if field is None or getattr(config, field, None) is not None:
        return None
    unit, token = ("frame", "video") if field == "video_token_index" else ("image", "image")
    return (f"its config has no {field}, so forward cannot find the placeholders of the "
            f"{getattr(config, 'num_query_tokens', '?')} query outputs per {unit} in input_ids: "
            "transformers 4 (checked on 4.51) joins the query outputs in front of the text inside "
            "forward (the block outputs are wider than input_ids) and 5.x raises; not supported. "
            f"Set config.{field} to the id of the processor's {token} token and put "
            f"num_query_tokens of those tokens per {unit} before the text (the processor does so "
            "when its num_query_tokens is set)")


# Types whose every forward needs an image input (each raises without one), and how a forward of
# text alone runs on them: text_only_inputs' inputs, or (query-token families) text_only_model.
NEEDS_IMAGE: dict[str, str] = {
    "kosmos-2": "image_embeds of zero image tokens (no image, no placeholder replaced)",
    "idefics": "one black image of the vision tower's size, which no token attends to",
    "blip-2": "none: measured on its language_model (the text has no placeholder)",
    "instructblip": "none: measured on its language_model (the text has no placeholder)",
    "instructblipvideo": "none: measured on its language_model (the text has no placeholder)",
}


def text_only_model(model: Any) -> Any:
    """The module a forward of text alone runs on: a query-token family's language model (a text
    without placeholders is the language model's alone, on transformers 5 and 4.51, whose
    InstructBLIP scatters its query outputs even with no placeholder): the inner model
    ``TRACKED_AT`` names; ``model`` otherwise."""
    model_type = getattr(model.config, "model_type", None)
    return operator.attrgetter(TRACKED_AT[model_type])(model) if model_type in PLACEHOLDER_ID \
        else model


def text_only_inputs(model: Any, input_ids: torch.Tensor) -> dict[str, Any]:
    """What a forward of ``input_ids`` ([B, T], text only) needs besides them where the family's
    forward refuses to run without an image (``NEEDS_IMAGE``): inputs under which the text's
    states are exactly those of the text alone (its tokens see no image; tested against the
    text model alone and against another image). {} for every other family."""
    model_type = getattr(model.config, "model_type", None)
    if model_type not in NEEDS_IMAGE or model_type in PLACEHOLDER_ID:
        return {}  # a query-token family runs on its language model instead: text_only_model
    weight = next(p for p in model.parameters() if p.is_floating_point())
    batch, length = input_ids.shape
    options = {"device": input_ids.device}
    if model_type == "kosmos-2":
        width = model.config.get_text_config().hidden_size
        return {"image_embeds": torch.zeros(batch, 0, width, dtype=weight.dtype, **options),
                "image_embeds_position_mask": torch.zeros_like(input_ids)}
    vision = model.config.vision_config
    size = (vision.image_size,) * 2 if isinstance(vision.image_size, int) else vision.image_size
    # idefics: [B, images, C, S, S], [B, T, images]
    return {"pixel_values": torch.zeros(batch, 1, vision.num_channels, *size, dtype=weight.dtype,
                                        **options),
            "image_attention_mask": torch.zeros(batch, length, 1, dtype=torch.long, **options)}


REFUSED: dict[str, str] = {
    "florence2": ENCODER_DECODER,
    "pix2struct": ENCODER_DECODER,
    "udop": ENCODER_DECODER,
    "t5gemma2": ENCODER_DECODER,
    "pp_formulanet": ENCODER_DECODER,
    "vision-encoder-decoder": ENCODER_DECODER,
    "git": ("the image tokens are prepended to the text inside forward, so the block outputs are "
            "wider than input_ids; not supported"),
    "blip": ("it generates through its inner text decoder's own generate; patch "
             "model.text_decoder (layers_path='bert.encoder.layer') instead"),
    "glm5_next": _HYPER_CONNECTIONS,
    "hy_v4_vl": _HYPER_CONNECTIONS,
    "qwen4_exp": _HYPER_CONNECTIONS,
    "evolla": "a protein-text model, not loadable as an image-text-to-text model; not supported",
    "pi0": "a robot action model (its config has no text decoder depth); not supported",
    "pixtral": ("transformers 4.51 lists Pixtral's vision encoder config; Pixtral models load as "
                "llava (supported); not a model by itself"),
}

# Types no test can build here: not refused (they worked through the fallbacks before the table
# existed), but a warning says so when one is patched.
UNVERIFIED: dict[str, str] = {
    "chameleon": _NOT_BUILT.format("no vq_config"),
    "emu3": _NOT_BUILT.format("no vq_config"),
    "cohere_compass": _NOT_BUILT.format("unknown layer type 'full_attention'"),
    "deepseek_ocr2": _NOT_BUILT.format("no vision config"),
    "diffusion_gemma": _NOT_BUILT.format("no vocabulary size"),
    "granite4_vision": _NOT_BUILT.format("no layer list"),
    "hunyuan_vl": _NOT_BUILT.format("no rope theta"),
    "fast_vlm": _TIMM,
    "gemma3n": _TIMM,
    "perception_lm": _TIMM,
}
