"""Reading a target: explicit TargetSpec, a local config folder, and the Hub-id rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_llm import tiny_qwen2_vl_config

from l2v_hub import BuildError, ModelRef, TargetSpec
from l2v_hub.builder.target import read_target, resolve_model_id


def test_target_spec_is_validated_and_converted() -> None:
    spec = TargetSpec("Qwen/Qwen2-VL-7B-Instruct", 3584, 28, "qwen2_vl")
    assert read_target(spec) == ModelRef("Qwen/Qwen2-VL-7B-Instruct", 3584, 28, "qwen2_vl")
    with pytest.raises(BuildError, match="not a local path"):
        TargetSpec("/models/qwen", 3584, 28, "qwen2_vl")
    with pytest.raises(BuildError, match="hidden_size must be a positive int"):
        TargetSpec("a/b", 0, 28, "qwen2_vl")
    with pytest.raises(BuildError, match="num_layers"):
        TargetSpec("a/b", 64, True, "qwen2_vl")


def test_local_config_folder_reads_the_text_decoder(tmp_path: Path) -> None:
    folder = tiny_qwen2_vl_config(tmp_path / "vlm", hidden=48, layers=6)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]  # no weights needed
    ref = read_target(folder, model_id="Qwen/Qwen2-VL-2B-Instruct")
    assert ref == ModelRef("Qwen/Qwen2-VL-2B-Instruct", 48, 6, "qwen2_vl")


def test_local_folder_needs_a_hub_id(tmp_path: Path) -> None:
    folder = tiny_qwen2_vl_config(tmp_path / "vlm")
    with pytest.raises(BuildError, match="is a local path: give the Hub id"):
        read_target(folder)
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, "_name_or_path": "org/saved-vlm"}))
    assert read_target(folder).model_id == "org/saved-vlm"
    (folder / "config.json").write_text(json.dumps({**data, "_name_or_path": str(folder)}))
    with pytest.raises(BuildError, match="is a local path"):
        read_target(folder)


def test_missing_or_broken_target_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuildError, match=r"has no config\.json"):
        read_target(tmp_path / "empty", model_id="a/b")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-model-type"}')
    with pytest.raises(BuildError, match="cannot read the config of target"):
        read_target(bad, model_id="a/b")


def test_resolve_model_id_for_hub_ids() -> None:
    assert resolve_model_id("HuggingFaceTB/SmolLM2-135M-Instruct", None, "llm") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_model_id("/nowhere/x.gguf", "org/name", "llm") == "org/name"
    with pytest.raises(BuildError, match="source_id="):
        resolve_model_id(__file__, None, "llm")
