"""Causal LMs wrapped as VLMs, saved as complete model folders (weights, configs, processor).

``save_vlm`` puts an LLM's exact weights into a ``LlavaOnevisionForConditionalGeneration`` or a
``Gemma3ForConditionalGeneration`` with a small random (seeded) SigLIP tower, so text goes through
the real VLM code path with real language weights and gives the LLM's logits, and images go
through the model's own processor and chat template (``AutoProcessor``), all offline on a CPU.

Per image, at ``image_size`` S (patch 16, so (S/16)^2 patches per crop):

- ``llava_onevision``: anyres with the single grid ``[[S, S]]``: a base crop and one tile, the tile
  unpadded to the image's aspect ratio plus a newline per row: 36 tokens for a square image at
  S=64, fewer for others. Processor: ``LlavaNextProcessor``, which counts these tokens as the
  LLaVA-OneVision model makes them (no anyres_max pooling applies to one tile); transformers 5.x
  cannot build ``LlavaOnevisionProcessor`` without torchvision (its video processor slot).
- ``gemma3``: ``Gemma3Processor``: ``<start_of_image>`` in the prompt becomes ``\\n\\n``, boi,
  (S/16)^2 ``<image_soft_token>`` (16 at S=64) and eoi, ``\\n\\n``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import L2VHubError
from .models import GEMMA_VLM_ID, load_gemma, load_qwen_05b

__all__ = ["FAMILIES", "GEMMA_VLM_ID", "QWEN_VLM_ID", "gemma_vlm", "qwen_05b_vlm", "save_vlm"]

FAMILIES = ("llava_onevision", "gemma3")
QWEN_VLM_ID = "l2v-hub/llava-onevision-qwen2.5-coder-0.5b-demo"
_PATCH = 16
# The tokens each family's processor and model look for, by their tokenizer attribute name.
_TOKENS = {
    "llava_onevision": {"image_token": "<image>", "video_token": "<video>"},
    "gemma3": {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>",
               "eoi_token": "<end_of_image>"},
}
# What an image part becomes in the prompt text (the processor expands it to the image's tokens).
_PLACEHOLDER = {"llava_onevision": "<image>\n", "gemma3": "<start_of_image>"}
# A GGUF tokenizer fills the embedding's spare rows with "[PAD<id>]" entries: unused rows, so a
# missing image token can take one, as the Hub tokenizer would number it, without a resize.
_FILLER = re.compile(r"\[PAD(\d+)\]")
# Files without which a saved folder is incomplete (and rebuilt by the cached builders).
_REQUIRED = ("config.json", "generation_config.json", "model.safetensors", "processor_config.json",
             "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")

# Content parts -> one string per message, in order, then the LLM's own chat template runs on it:
# text prompts render exactly as they do for the LLM.
_FLATTEN = """{%- set ns = namespace(messages=[]) -%}
{%- for m in messages -%}
{%- if m['content'] is string -%}{%- set ns.messages = ns.messages + [m] -%}
{%- else -%}{%- set part_ns = namespace(text='') -%}
{%- for part in m['content'] -%}
{%- if part['type'] == 'image' -%}{%- set part_ns.text = part_ns.text + PLACEHOLDER -%}
{%- elif part['type'] == 'text' -%}{%- set part_ns.text = part_ns.text + part['text'] -%}
{%- endif -%}
{%- endfor -%}
{%- set ns.messages = ns.messages + [{'role': m['role'], 'content': part_ns.text}] -%}
{%- endif -%}
{%- endfor -%}
{%- set messages = ns.messages -%}
"""
# For an LLM without a chat template (a base model): l2v-hub's base-model prompt, images first.
_PLAIN = """BOS{%- for m in messages -%}
{%- if m['content'] is string -%}{%- set text = m['content'] -%}{%- set n = 0 -%}
{%- else -%}{%- set text = m['content'] | selectattr('type', 'equalto', 'text')
    | map(attribute='text') | join('') -%}
{%- set n = m['content'] | selectattr('type', 'equalto', 'image') | list | length -%}{%- endif -%}
{{- PLACEHOLDER * n -}}
{%- if m['role'] == 'user' -%}{{ 'Question: ' + text + '\\n' }}
{%- elif m['role'] == 'assistant' -%}{{ 'Answer: ' + text + '\\n' }}
{%- else -%}{{ text + '\\n\\n' }}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'Answer:' }}{%- endif -%}"""


def _chat_template(tokenizer: Any, family: str) -> str:
    placeholder = json.dumps(_PLACEHOLDER[family])  # a Jinja string literal
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if own:
        return _FLATTEN.replace("PLACEHOLDER", placeholder) + own
    # Chat templates carry the BOS (l2v-hub tokenizes chat prompts without special tokens).
    adds_bos = tokenizer.bos_token_id is not None and tokenizer("a")["input_ids"][:1] == [
        tokenizer.bos_token_id]
    bos = "{{- bos_token -}}" if adds_bos else ""
    return _PLAIN.replace("BOS", bos).replace("PLACEHOLDER", placeholder)


def _tokenizer(tokenizer: Any, family: str, folder: Path) -> Any:
    """The LLM's tokenizer with the family's tokens as special tokens (filling GGUF filler rows
    first) and its named token attributes (``image_token``, ...)."""
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(folder)
    spec_path = folder / "tokenizer.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.is_file() else {}
    vocab = spec.get("model", {}).get("vocab")
    if isinstance(vocab, dict):  # BPE or WordLevel
        added = {t["content"] for t in spec.get("added_tokens", [])}
        fillers = sorted((i, t) for t, i in vocab.items()
                         if t not in added and (m := _FILLER.fullmatch(t)) and int(m[1]) == i)
        for token in (t for t in _TOKENS[family].values() if t not in vocab and t not in added):
            if not fillers:
                break
            vocab[token] = vocab.pop(fillers.pop(0)[1])
        spec_path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # Named token attributes are registered, and missing ones added, by from_pretrained.
    # Left padding (saved in tokenizer_config.json): batched generation.
    return AutoTokenizer.from_pretrained(folder, padding_side="left", **_TOKENS[family])


def _vision(image_size: int) -> Any:
    from transformers import SiglipVisionConfig

    if image_size % _PATCH:
        raise L2VHubError(f"image_size must be a multiple of {_PATCH}, got {image_size}")
    return SiglipVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, image_size=image_size, patch_size=_PATCH,
                              vision_use_head=False)


def _model_and_processor(lm: Any, tok: Any, family: str, image_size: int) -> tuple[Any, Any]:
    """The VLM (random, not yet holding the LLM's weights) and its processor."""
    import transformers as tf
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil,
    )

    ids = {name: tok.convert_tokens_to_ids(token) for name, token in _TOKENS[family].items()}
    size = {"height": image_size, "width": image_size}
    common = {"text_config": lm.config.to_dict(), "vision_config": _vision(image_size).to_dict(),
              "tie_word_embeddings": bool(lm.config.tie_word_embeddings)}
    template = _chat_template(tok, family)
    if family == "llava_onevision":
        config = tf.LlavaOnevisionConfig(
            **common, image_token_index=ids["image_token"], video_token_index=ids["video_token"],
            image_grid_pinpoints=[[image_size, image_size]], vision_feature_select_strategy="full",
            vision_feature_layer=-1)
        model = tf.LlavaOnevisionForConditionalGeneration(config)
        images = LlavaNextImageProcessorPil(
            size=size, crop_size=size, do_center_crop=False, image_mean=[0.5] * 3,
            image_std=[0.5] * 3, image_grid_pinpoints=[[image_size, image_size]])
        processor = tf.LlavaNextProcessor(
            image_processor=images, tokenizer=tok, patch_size=_PATCH, chat_template=template,
            vision_feature_select_strategy="full", image_token=_TOKENS[family]["image_token"])
    else:  # gemma3
        tokens = (image_size // _PATCH) ** 2  # one soft token per patch (no pooling)
        config = tf.Gemma3Config(
            **common, mm_tokens_per_image=tokens, boi_token_index=ids["boi_token"],
            eoi_token_index=ids["eoi_token"], image_token_index=ids["image_token"])
        model = tf.Gemma3ForConditionalGeneration(config)
        # Gemma 3 initializes this projection to zeros: every image would embed as zeros and
        # change nothing. Unit-scale outputs, like the (scaled) text embeddings.
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        torch.nn.init.normal_(proj.data, std=config.vision_config.hidden_size ** -0.5)
        images = Gemma3ImageProcessorPil(size=size, image_mean=[0.5] * 3, image_std=[0.5] * 3)
        processor = tf.Gemma3Processor(image_processor=images, tokenizer=tok,
                                       chat_template=template, image_seq_length=tokens)
    return model, processor


def _in_rows(family: str, ids: dict[str, int]) -> int:
    """How many embedding rows the family's tokens need: Gemma 3 maps an image token past the
    vocabulary to padding before the embedding (the real Gemma 3 numbers it 262144); LLaVA
    does not."""
    outside = "image_token" if family == "gemma3" else None
    return 1 + max(i for name, i in ids.items() if name != outside)


def save_vlm(lm: Any, tokenizer: Any, family: str, out_dir: Path, *, model_id: str,
             image_size: int = 64, seed: int = 0) -> Path:
    """Write ``lm`` (a causal LM) and ``tokenizer`` as a ``family`` VLM folder; return it.

    The folder (``save_pretrained``: safetensors weights, config, generation config, processor
    with its tokenizer and chat template, and a README naming ``model_id``) loads offline with
    ``AutoModelForImageTextToText`` and ``AutoProcessor``. Its language model and LM head are the
    LLM's exact weights (strict load); the SigLIP tower and projector are random, seeded by
    ``seed`` without touching the global RNG. The embedding grows only when the family's tokens
    find no room in it. Written to a temporary sibling, then renamed: ``out_dir`` must not exist.
    """
    if family not in FAMILIES:
        raise L2VHubError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise L2VHubError(f"{out_dir} already exists: pass a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its 0700 mode would stay on the renamed folder.
    staging = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.{secrets.token_hex(4)}")
    staging.mkdir()
    try:
        tok = _tokenizer(tokenizer, family, staging / "tokenizer")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vlm, processor = _model_and_processor(lm, tok, family, image_size)
        vlm = vlm.to(lm.dtype).eval()
        vlm.model.language_model.load_state_dict(lm.model.state_dict(), strict=True)
        vlm.lm_head.load_state_dict(lm.lm_head.state_dict(), strict=True)
        ids = {name: tok.convert_tokens_to_ids(t) for name, t in _TOKENS[family].items()}
        if _in_rows(family, ids) > vlm.config.text_config.vocab_size:
            vlm.resize_token_embeddings(_in_rows(family, ids), mean_resizing=False)
        vlm.generation_config = copy.deepcopy(lm.generation_config)
        shutil.rmtree(staging / "tokenizer")
        vlm.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / "README.md").write_text(
            f"# {model_id}\n\n{type(vlm).__name__} around the language model of "
            f"`{lm.name_or_path}` (exact weights), with a random {image_size}px SigLIP tower "
            f"(seed {seed}): for testing the VLM code path, not for seeing images.\n",
            encoding="utf-8")
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _REQUIRED)


def _cached(cache_dir: Path, name: str, load: Callable[[Path], tuple[Any, Any]], family: str,
            model_id: str) -> Path:
    folder = Path(cache_dir) / "vlm" / name
    if _complete(folder):
        return folder
    if folder.exists():  # not a folder save_vlm renamed into place: rebuild it
        shutil.rmtree(folder)
    lm, tokenizer = load(Path(cache_dir))
    try:
        return save_vlm(lm, tokenizer, family, folder, model_id=model_id)
    except (OSError, L2VHubError):
        if _complete(folder):  # another process renamed its folder into place first
            return folder
        raise


def qwen_05b_vlm(cache_dir: Path) -> Path:
    """The LLaVA-OneVision folder around the real Qwen2.5-Coder-0.5B-Instruct, built once into
    ``cache_dir/vlm/`` (its text decoder is LLaVA-OneVision-0.5B's: qwen2, 896 wide, 24 blocks)."""
    return _cached(cache_dir, QWEN_VLM_ID.split("/")[1], load_qwen_05b, "llava_onevision",
                   QWEN_VLM_ID)


def gemma_vlm(cache_dir: Path) -> Path:
    """The Gemma 3 VLM folder around the real Gemma 3 270M, built once into ``cache_dir/vlm/``."""
    return _cached(cache_dir, GEMMA_VLM_ID.split("/")[1], load_gemma, "gemma3", GEMMA_VLM_ID)
