"""The producer side of l2v-hub: extract CoT directions from a text LLM and encode them into a pack.

``build_pack(model, tokenizer, target, pairs)`` is the one-call API; ``load_llm`` loads a source
LLM (GGUF included) and the pair loaders give the contrastive inputs.
"""

from .build import (
    DEFAULT_STRENGTH,
    KEEP_FRACTION,
    build_pack,
    build_packs,
    default_keep,
    default_layers,
    paper_keep,
)
from .extract import Extraction, extract
from .generate import generate_pairs
from .llm import load_llm, load_model, load_processor
from .pairs import (
    ContrastivePair,
    PairSet,
    builtin_pairs,
    load_jsonl,
    load_pairs,
    prompt_contrast,
)
from .target import TargetSpec, read_target

__all__ = [
    "DEFAULT_STRENGTH",
    "KEEP_FRACTION",
    "ContrastivePair",
    "Extraction",
    "PairSet",
    "TargetSpec",
    "build_pack",
    "build_packs",
    "builtin_pairs",
    "default_keep",
    "default_layers",
    "extract",
    "generate_pairs",
    "load_jsonl",
    "load_llm",
    "load_model",
    "load_pairs",
    "load_processor",
    "paper_keep",
    "prompt_contrast",
    "read_target",
]
