"""The end-to-end demo (``python -m l2v_hub.demo``) and the two real models it runs on."""

from .models import (
    GEMMA_ID,
    GEMMA_VLM_ID,
    SMOLLM2_ID,
    gemma_gguf,
    load_gemma,
    load_gemma_vlm,
    load_smollm2,
    smollm2_gguf,
)

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
