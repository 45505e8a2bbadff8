"""Tiny stand-ins for the demo's models, importable by the demo's fresh process (``module:function``
loaders): a random Llama source and a random Gemma 3 text model, with the Gemma 3 VLM on the same
language weights, all over the byte tokenizer. Not a test module itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tiny_llm import byte_tokenizer, tiny_llama
from transformers import (
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
)

__all__ = ["GEMMA_ID", "SOURCE_ID", "VLM_ID", "gemma_vlm_folder", "load_gemma", "load_gemma_vlm",
           "load_source"]

SOURCE_ID, GEMMA_ID, VLM_ID = "test/tiny-llama", "test/tiny-gemma", "test/tiny-gemma-vlm"
# The window spans the whole prompt, so the steered first token reaches the last one.
_TEXT = dict(vocab_size=262, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
             num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=512,
             pad_token_id=0, bos_token_id=1, eos_token_id=2)


def _named(model: Any, model_id: str) -> Any:
    model.name_or_path = model_id
    model.config._name_or_path = model_id
    return model


def load_source(_cache: Path) -> tuple[Any, Any]:
    return _named(tiny_llama(hidden=48, layers=5, seed=1), SOURCE_ID), byte_tokenizer(chat_template=True)


def load_gemma(_cache: Path) -> tuple[Any, Any]:
    torch.manual_seed(2)
    return _named(Gemma3ForCausalLM(Gemma3TextConfig(**_TEXT)).eval(), GEMMA_ID), byte_tokenizer()


def load_gemma_vlm(cache: Path) -> tuple[Any, Any]:
    lm, tokenizer = load_gemma(cache)
    config = Gemma3Config(
        text_config=lm.config.to_dict(),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=16, intermediate_size=32,
                           num_hidden_layers=1, num_attention_heads=2, image_size=8, patch_size=2),
        mm_tokens_per_image=4, boi_token_index=250, eoi_token_index=251, image_token_index=252,
    )
    vlm = Gemma3ForConditionalGeneration(config).eval()
    vlm.get_decoder().load_state_dict(lm.model.state_dict(), strict=True)
    vlm.tie_weights()
    return _named(vlm, VLM_ID), tokenizer


def gemma_vlm_folder(cache: Path) -> Path:
    """The tiny Gemma 3 VLM saved with its processor (what the demo's eval stage loads), once."""
    from l2v_hub.demo.vlm import save_vlm

    folder = cache / "vlm" / "tiny-gemma-vlm"
    if not folder.is_dir():
        lm, tokenizer = load_gemma(cache)
        save_vlm(lm, tokenizer, "gemma3", folder, model_id=VLM_ID)
    return folder
