"""Tiny random VLMs of the three families the plugin is tested on with images (Qwen2-VL with
M-RoPE, LLaVA-OneVision, Gemma 3), each saved to a folder with what vLLM loads to serve images
(config, safetensors weights, tokenizer, processor and image processor configs), and one prompt
with an image, as vLLM and transformers each take it.

Text decoders: ``HIDDEN`` x ``LAYERS`` with head size 32 (a size vLLM's CPU attention has kernels
for); vision towers of one or two blocks, head size 32 too. The processors are the ones vLLM
itself loads: ``Qwen2VLProcessor``, ``LlavaOnevisionProcessor`` (both with a video processor
slot, which transformers builds only with torchvision) and ``Gemma3Processor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models
from vllm_fixtures import HIDDEN, LAYERS

from l2v_hub.demo.vlm import save_vlm

__all__ = ["FAMILIES", "MODEL_IDS", "char_tokenizer", "image", "prompts", "tiny_vlm"]

FAMILIES = ("qwen2_vl", "llava_onevision", "gemma3")
MODEL_IDS = {family: f"tiny/{family}-vllm" for family in FAMILIES}
VOCAB = 128
_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
# The image tokens of each family, added to the tokenizer as special tokens.
_QWEN_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
_LLAVA_TOKENS = ["<image>", "<video>"]
# What marks an image in each family's prompt text (the processors expand it to the image's
# tokens: Qwen2-VL's <|image_pad|> to one per merged patch, LLaVA-OneVision's <image> to the base
# crop, the tile and its newlines, Gemma 3's <start_of_image> to \n\n boi, soft tokens, eoi \n\n).
_IMAGE_PART = {"qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
               "llava_onevision": "<image>\n", "gemma3": "<start_of_image>"}
_TEXT = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128,
             num_hidden_layers=LAYERS, num_attention_heads=2, num_key_value_heads=1,
             max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2,
             tie_word_embeddings=False)
_LLAVA_IMAGE = 32  # pixels: 2 x 2 SigLIP patches of 16 per crop


def char_tokenizer(extra: list[str] | None = None) -> transformers.PreTrainedTokenizerFast:
    """One token per printable ASCII character, and ``\\n`` to ``\\n\\n\\n\\n`` as single tokens,
    as Gemma's tokenizer has them (vLLM's Gemma 3 processor looks them up to merge the newlines
    it puts around an image); ``extra``: special tokens after those (ids from 103 on)."""
    newlines = ["\n" * n for n in range(1, 5)]
    vocab = {t: i for i, t in enumerate([*_SPECIALS, *map(chr, range(32, 127)), *newlines])}
    merges = [("\n", "\n"), ("\n\n", "\n"), ("\n\n", "\n\n")]
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens([*_SPECIALS, *(extra or [])])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        unk_token="<unk>")


def image() -> Any:
    """A seeded 64 x 48 RGB noise image (not square: LLaVA-OneVision unpads its tile)."""
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _spread_logits(model: Any) -> None:
    """A wider spread of logits than the default init: fewer exact ties between tokens."""
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(20.0)


def _hub_siglip_names(folder: Path) -> None:
    """Rename the saved SigLIP tower's weights to the layout of the Hub checkpoints
    (``vision_tower.vision_model.*``), which vLLM's SigLIP loads: transformers 5.x saves the tower
    without ``vision_model.`` and loads either layout to the same weights."""
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    weights = load_file(path)
    prefix = "vision_tower."
    save_file({(f"{prefix}vision_model.{k[len(prefix):]}" if k.startswith(prefix)
                and not k.startswith(f"{prefix}vision_model.") else k): v
               for k, v in weights.items()}, path, metadata={"format": "pt"})


def _qwen2_vl(folder: Path) -> None:
    tok = char_tokenizer(_QWEN_TOKENS)
    ids = dict(zip(("vision_start_token_id", "vision_end_token_id", "image_token_id",
                    "video_token_id"), tok.convert_tokens_to_ids(_QWEN_TOKENS), strict=True))
    config = transformers.Qwen2VLConfig(
        **_TEXT, **ids, rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
        vision_config=dict(depth=1, embed_dim=64, hidden_size=HIDDEN, num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2))
    model = transformers.Qwen2VLForConditionalGeneration(config).eval()
    _spread_logits(model)
    model.save_pretrained(folder)
    transformers.Qwen2VLProcessor(
        image_processor=transformers.Qwen2VLImageProcessor(), tokenizer=tok,
        video_processor=transformers.Qwen2VLVideoProcessor()).save_pretrained(folder)


def _llava_onevision(folder: Path) -> None:
    """save_vlm's LLaVA-OneVision around a tiny Qwen2, with the processor vLLM loads."""
    lm = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**_TEXT)).eval()
    _spread_logits(lm)
    save_vlm(lm, char_tokenizer(), "llava_onevision", folder, model_id=MODEL_IDS["llava_onevision"],
             image_size=_LLAVA_IMAGE)
    size = {"height": _LLAVA_IMAGE, "width": _LLAVA_IMAGE}
    saved = transformers.AutoTokenizer.from_pretrained(folder)
    transformers.LlavaOnevisionProcessor(
        image_processor=transformers.LlavaOnevisionImageProcessor(
            size=size, image_grid_pinpoints=[[_LLAVA_IMAGE, _LLAVA_IMAGE]], image_mean=[0.5] * 3,
            image_std=[0.5] * 3),
        video_processor=transformers.LlavaOnevisionVideoProcessor(size=size), tokenizer=saved,
        num_image_tokens=(_LLAVA_IMAGE // 16) ** 2, vision_feature_select_strategy="full",
        chat_template=saved.chat_template).save_pretrained(folder)
    _hub_siglip_names(folder)


def _gemma3(folder: Path) -> None:
    """save_vlm's Gemma 3 around a tiny Gemma 3 text model: 16 px images, one soft token each.

    One: vLLM's CPU attention has no mode for Gemma 3's bidirectional attention among an image's
    soft tokens (transformers attends both ways there), so only a one-token image means the same
    in both."""
    text = transformers.Gemma3TextConfig(
        **_TEXT, head_dim=32, sliding_window=512,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"])
    lm = transformers.Gemma3ForCausalLM(text).eval()
    _spread_logits(lm)
    save_vlm(lm, char_tokenizer(), "gemma3", folder, model_id=MODEL_IDS["gemma3"], image_size=16)
    _hub_siglip_names(folder)


def tiny_vlm(family: str, folder: Path) -> Path:
    """Save the tiny random float32 VLM of ``family`` (one of ``FAMILIES``) to ``folder``."""
    torch.manual_seed(0)
    {"qwen2_vl": _qwen2_vl, "llava_onevision": _llava_onevision, "gemma3": _gemma3}[family](folder)
    return folder


def prompts(family: str, folder: Path, text: str, with_image: bool
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``text`` after an image (``with_image``) or alone, as a vLLM prompt dict and as the
    transformers processor's output for it (``input_ids`` [1, T], ``pixel_values``, ...)."""
    prompt = (_IMAGE_PART[family] if with_image else "") + text
    processor = transformers.AutoProcessor.from_pretrained(folder)
    if with_image:
        return ({"prompt": prompt, "multi_modal_data": {"image": image()}},
                dict(processor(text=prompt, images=image(), return_tensors="pt")))
    return {"prompt": prompt}, dict(processor(text=prompt, return_tensors="pt"))
