"""load_llm: local folders, dtype and device, and the dequantized-GGUF cache (real SmolLM2 file)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from tiny_llm import REPO_CACHE, byte_tokenizer, tiny_llama

from l2v_hub import BuildError, load_llm
from l2v_hub.demo import smollm2_gguf


def test_load_a_local_folder_with_dtype_and_device(tmp_path: Path) -> None:
    tiny_llama().save_pretrained(tmp_path / "m")
    byte_tokenizer().save_pretrained(tmp_path / "m")
    model, tok = load_llm(tmp_path / "m", dtype="bfloat16", device="cpu")
    assert model.dtype == torch.bfloat16 and not model.training
    assert tok.decode(tok("a × b")["input_ids"]) == "a × b"


def test_bad_dtype_and_missing_model_are_named(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="dtype must be"):
        load_llm(tmp_path, dtype="int8")
    with pytest.raises(BuildError, match="cannot load the LLM"):
        load_llm(tmp_path / "nothing-here")
    with pytest.raises(BuildError, match=r"GGUF file 'x\.gguf' not found"):
        load_llm(tmp_path, gguf_file="x.gguf")


@pytest.mark.slow
def test_gguf_is_dequantized_once_and_then_read_from_the_cache() -> None:
    gguf = smollm2_gguf()
    model, tok = load_llm(gguf, cache_dir=REPO_CACHE)
    folder = Path(model.config._name_or_path)
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert folder.parent == REPO_CACHE / "gguf"
    assert folder.name == f"{gguf.stem}-{digest[:16]}-{gguf.stat().st_size}-float32"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again, tok2 = load_llm(gguf, cache_dir=REPO_CACHE)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing rewritten
    assert again.config._name_or_path == str(folder)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (576, 30)
    text = "What is 2 + 3?"
    assert tok(text)["input_ids"] == tok2(text)["input_ids"]
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, again(ids).logits)
