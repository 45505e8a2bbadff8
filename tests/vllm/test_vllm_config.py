"""l2v_hub.vllm.config: the engine's l2v_hub section and the per-request keys, on a real pack
folder and the Hugging Face config of a tiny model (no engine started)."""

from __future__ import annotations

import pytest
import transformers
from vllm_fixtures import HIDDEN, LAYERS, MODEL_ID, make_pack

from l2v_hub.errors import ArgumentError, IncompatiblePackError, PackError
from l2v_hub.vllm.config import EngineSteering, RequestSteering


class Qwen2ForCausalLM:
    """What the fit checks read of a served model: its Hugging Face config."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        self.config = transformers.Qwen2Config(hidden_size=hidden, num_hidden_layers=LAYERS,
                                               num_attention_heads=2, num_key_value_heads=1)


@pytest.fixture
def packs(tmp_path):
    a = make_pack(tmp_path / "a", name="pack-a", op="norm_preserving_add", positions="all",
                  seed=1, scale=4.0, strength=0.8, layers=(1,))
    b = make_pack(tmp_path / "b", name="pack-b", op="add", positions="generated", seed=2,
                  scale=3.0, strength=0.6, layers=(0, 2))
    return str(a), str(b)


def _engine(packs, **section) -> EngineSteering:
    config = {"l2v_hub": {"packs": list(packs), "model_id": MODEL_ID, **section}}
    engine = EngineSteering.from_additional_config(config, Qwen2ForCausalLM())
    assert engine is not None
    return engine


def test_inert_without_a_section() -> None:
    assert EngineSteering.from_additional_config({}, Qwen2ForCausalLM()) is None
    assert EngineSteering.from_additional_config({"other": 1}, Qwen2ForCausalLM()) is None


def test_requests(packs) -> None:
    engine = _engine(packs)
    assert [p.name for p in engine.packs] == ["pack-a@1.0.0", "pack-b@1.0.0"]
    assert engine.for_request(None) is None
    assert engine.for_request({"l2v_pack": "none"}) is None
    assert engine.for_request({"l2v_pack": "pack-b@1.0.0"}) == RequestSteering(1, 0.6, "generated")
    assert engine.for_request({"l2v_pack": "pack-a@1.0.0", "l2v_strength": 2,
                               "l2v_positions": "prompt_last"}) == RequestSteering(0, 2.0,
                                                                                  "prompt_last")


def test_default_pack_applies_to_requests_without_one(packs) -> None:
    engine = _engine(packs, default=packs[1])
    assert engine.for_request({}) == RequestSteering(1, 0.6, "generated")
    assert engine.for_request({"l2v_strength": 0.1}) == RequestSteering(1, 0.1, "generated")
    assert engine.for_request({"l2v_pack": "none"}) is None


def test_salts_separate_steering_configurations(packs) -> None:
    engine = _engine(packs)
    a_all = RequestSteering(0, 0.8, "all")
    assert engine.cache_salt(None, 10) is None
    assert engine.cache_salt(a_all, 10) == engine.cache_salt(a_all, 20)  # 'all': any prompt
    gen = RequestSteering(0, 0.8, "generated")
    salts = {engine.cache_salt(s, n) for s, n in [(a_all, 10), (gen, 10), (gen, 11),
                                                  (RequestSteering(0, 0.9, "generated"), 10),
                                                  (RequestSteering(1, 0.8, "generated"), 10)]}
    assert len(salts) == 5


@pytest.mark.parametrize(("section", "message"), [
    ({"packs": "x"}, "l2v_hub.packs must be a list of pack references"),
    ({"packs": [], "default": None}, "l2v_hub names no pack"),
    ({"pack": []}, "unknown keys ['pack']"),
    ({"default": 3}, "l2v_hub.default must be a pack reference"),
])
def test_bad_sections(section, message) -> None:
    with pytest.raises(ArgumentError) as raised:
        EngineSteering.from_additional_config({"l2v_hub": section}, Qwen2ForCausalLM())
    assert message in str(raised.value)


def test_missing_pack_folder_is_named(tmp_path) -> None:
    with pytest.raises(PackError, match="missing"):
        EngineSteering.from_additional_config(
            {"l2v_hub": {"packs": [str(tmp_path / "missing")]}}, Qwen2ForCausalLM())


def test_pack_for_another_model_stops_the_start(packs) -> None:
    with pytest.raises(IncompatiblePackError) as raised:
        EngineSteering.from_additional_config({"l2v_hub": {"packs": [packs[0]]}},
                                              Qwen2ForCausalLM(hidden=96))
    # The message l2v_hub.patch gives (loader.fit.check_dims).
    assert "pack 'pack-a' is for tiny/qwen2-vllm (text hidden_size=64" in str(raised.value)
    assert "has text hidden_size=96" in str(raised.value)


def test_uncalibrated_pack_is_refused(tmp_path) -> None:
    from conftest import random_pack

    random_pack(HIDDEN, LAYERS, target_id=MODEL_ID, model_type="qwen2",
                scale=None).save_pretrained(tmp_path / "u")
    with pytest.raises(PackError, match="not calibrated: vLLM cannot measure its s_i"):
        EngineSteering.from_additional_config(
            {"l2v_hub": {"packs": [str(tmp_path / "u")], "model_id": MODEL_ID}},
            Qwen2ForCausalLM())
