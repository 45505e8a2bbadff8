"""build_pack: encoding, layer map, defaults and the diagnostics in stats."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_llm import byte_tokenizer, tiny_llama, tiny_qwen2_vl_config

from l2v_hub import BuildError, Pack, TargetSpec, build_pack, spectral
from l2v_hub.builder import default_keep, default_layers, extract, paper_keep
from l2v_hub.builder.build import DEFAULT_STRENGTH
from l2v_hub.builder.pairs import (
    PairSet,
    builtin_pairs,
    prompt_contrast,
    read_spans,
    tokenize_pairs,
)
from l2v_hub.hub import suggest_repo_name
from l2v_hub.metadata import Scale

PAIRS = PairSet("builtin-head", "response", builtin_pairs().pairs[:16])


@pytest.fixture(scope="module")
def llm() -> tuple[torch.nn.Module, object]:
    return tiny_llama(hidden=32, layers=4, seed=2), byte_tokenizer(chat_template=True)


def test_default_rules() -> None:
    # Unfiltered by default (docs/reasoning.md): every bin both sizes hold.
    assert default_keep(3584, 3584) == spectral.num_bins(3584) == 1793
    assert default_keep(1536, 896) == spectral.num_bins(896) == 449
    assert default_keep(576, 4096) == spectral.num_bins(576)
    # The paper's cut, on request.
    assert paper_keep(3584, 3584) == 200  # the authors' k for 3584-d models
    assert paper_keep(576, 576) == 32 and paper_keep(1536, 896) == 86
    assert paper_keep(4096, 64) == spectral.num_bins(64)  # capped by what the target holds
    assert paper_keep(8, 8) >= 1
    assert default_layers(28) == (12, 13, 14)
    assert default_layers(30) == (13, 14, 15)
    assert default_layers(2) == (0, 1) and default_layers(1) == (0,)


def test_the_default_pairs_are_the_prompt_contrast(llm) -> None:
    # docs/reasoning.md: the prompt contrast at the last prompt token moved reasoning.
    model, tok = llm
    target = TargetSpec("org/vlm", hidden_size=32, num_layers=4, model_type="llama")
    pack = build_pack(model, tok, target, source_id="org/tiny-llm", progress=False)
    assert pack.method.pairs == prompt_contrast().info() and pack.method.token == "last"
    assert pack.hook.positions == "prompt_last_and_generated"


def test_build_for_a_target_of_another_size(llm, tmp_path: Path) -> None:
    model, tok = llm
    target = TargetSpec("org/vlm", hidden_size=48, num_layers=7, model_type="qwen2_vl")
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny-llm", progress=False)
    assert pack.directions.shape == (7, 48) and pack.directions.dtype == torch.float32
    torch.testing.assert_close(pack.directions.norm(dim=-1), torch.ones(7))
    assert (pack.source.model_id, pack.source.hidden_size, pack.source.num_layers) == ("org/tiny-llm", 32, 4)
    assert pack.method.pairs == PAIRS.info() and pack.method.lowpass_keep == default_keep(32, 48)
    assert (pack.hook.op, pack.hook.positions) == ("norm_preserving_add", "prompt_last_and_generated")
    assert pack.defaults.layers == (2, 3, 4) and pack.defaults.strength == DEFAULT_STRENGTH
    # Built without the target's weights: v2, uncalibrated, s_i measured by the loader.
    assert pack.schema_version == 2 and pack.scale == Scale("token_spread", None)
    assert pack.calibration is None
    # One naming rule (issue 20): the default name is what publish suggests as the repo name.
    assert pack.name == "l2v-cot-tiny-llm-to-vlm" == suggest_repo_name(pack)
    assert Pack.from_pretrained(pack.save_pretrained(tmp_path / "p")) == pack


def test_identity_encoding_reproduces_the_source_directions(llm) -> None:
    """Same size, same depth, every bin kept: the pack is the unit source directions."""
    model, tok = llm
    target = TargetSpec("org/same", hidden_size=32, num_layers=4, model_type="llama")
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny", keep=spectral.num_bins(32), progress=False)
    raw = extract(model, tokenize_pairs(PAIRS, tok), progress=False).directions
    torch.testing.assert_close(pack.directions, raw / raw.norm(dim=-1, keepdim=True), rtol=1e-4, atol=1e-5)


def test_layer_map_blends_neighbouring_source_blocks(llm) -> None:
    model, tok = llm
    target = TargetSpec("org/deep", hidden_size=32, num_layers=7, model_type="llama")
    keep = spectral.num_bins(32)
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny", keep=keep, progress=False)
    raw = extract(model, tokenize_pairs(PAIRS, tok), progress=False).directions
    unit = raw / raw.norm(dim=-1, keepdim=True)
    # Target block 1 sits at source position 0.5: the normalised average of blocks 0 and 1.
    mid = (unit[0] + unit[1]) / 2
    torch.testing.assert_close(pack.directions[1], mid / mid.norm(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pack.directions[6], unit[3], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("read", ["response_mean", "response_first"])
def test_the_read_reaches_the_directions_and_the_pack(llm, tmp_path: Path, read: str) -> None:
    model, tok = llm
    target = TargetSpec("org/same", hidden_size=32, num_layers=4, model_type="llama")
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny", keep=spectral.num_bins(32),
                      read=read, progress=False)
    tokens = tokenize_pairs(PAIRS, tok)
    raw = extract(model, tokens, spans=read_spans(PAIRS, tok, tokens, read), progress=False).directions
    torch.testing.assert_close(pack.directions, raw / raw.norm(dim=-1, keepdim=True), rtol=1e-4, atol=1e-5)
    last = extract(model, tokens, progress=False).directions
    assert not torch.allclose(pack.directions, last / last.norm(dim=-1, keepdim=True), atol=1e-2)
    assert pack.method.token == read
    loaded = Pack.from_pretrained(pack.save_pretrained(tmp_path / "p"))
    assert loaded == pack and loaded.method.token == read


def test_stats_hold_the_diagnostics(llm, tmp_path: Path) -> None:
    model, tok = llm
    target = tiny_qwen2_vl_config(tmp_path / "vlm", hidden=48, layers=6)
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny", target_id="org/vlm",
                      extraction="pca", keep=5, progress=False)
    stats = pack.stats
    assert stats["extraction"] == "pca" and stats["pairs"] == 16 and stats["lowpass_keep"] == 5
    assert [row["block"] for row in stats["layers"]] == [0, 1, 2, 3]
    for row in stats["layers"]:
        assert row["norm"] > 0 and row["dispersion"] > 0 and row["state_norm"] > 0
        assert 0 <= row["separation"] <= 1 and 0 <= row["energy_in_band"] <= 1
    assert stats["default_source_blocks"] == [1, 2]  # target blocks 1,2,3 of 6 sit at source 0.6, 1.2, 1.8
    assert len(stats["spectrum"]["power"]) == spectral.num_bins(32)
    assert sum(stats["spectrum"]["power"]) == pytest.approx(1.0, abs=1e-3)
    assert len(stats["projection"]["cot"]) == 16


def test_energy_share_matches_a_direct_computation(llm) -> None:
    model, tok = llm
    target = TargetSpec("org/vlm", hidden_size=32, num_layers=4, model_type="llama")
    pack = build_pack(model, tok, target, PAIRS, source_id="org/tiny", keep=3, progress=False)
    raw = extract(model, tokenize_pairs(PAIRS, tok), progress=False).directions[2]
    share = float(spectral.lowpass(raw, 3).square().sum() / raw.square().sum())
    assert pack.stats["layers"][2]["energy_in_band"] == pytest.approx(share, rel=1e-4)


def test_bad_arguments_fail_before_any_work(llm) -> None:
    model, tok = llm
    target = TargetSpec("org/vlm", hidden_size=48, num_layers=6, model_type="qwen2_vl")
    for kwargs, message in (
        ({"keep": 0}, "keep must be an int in"),
        ({"keep": 18}, "keep must be an int in"),
        ({"layers": (6,)}, "layers must be block indices"),
        ({"strength": float("nan")}, "strength must be"),
        ({"read": "mean"}, "read must be one of"),
        ({"read": "response_mean", "pairs": "prompt-contrast"}, "needs response-style pairs"),
    ):
        with pytest.raises(BuildError, match=message):
            build_pack(model, tok, target, kwargs.pop("pairs", PAIRS), source_id="org/tiny", progress=False,
                       **kwargs)
    with pytest.raises(BuildError, match="does not record where it was loaded from"):
        build_pack(model, tok, target, PAIRS, progress=False)
    model.config._name_or_path = "/models/my-llm"
    try:
        with pytest.raises(BuildError, match="source_id="):
            build_pack(model, tok, target, PAIRS, progress=False)
    finally:
        model.config._name_or_path = ""
