"""Resolution by model id: identity from the model, then user registry > curated index > discovery."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import random_pack
from hubserver import HubServer
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from l2v_hub.errors import PackError, PackNotFoundError
from l2v_hub.hub import (
    Registry,
    RegistryEntry,
    find_pack,
    identify_model,
    next_step,
    publish,
    pull,
    push_index,
    resolve_pack,
)

TARGET = "tiny/vlm"
SHA = "c0ffee" + "0" * 34


def tiny_vlm(name_or_path: str = "") -> Qwen2VLForConditionalGeneration:
    """A random Qwen2-VL with a 48-wide, 6-block text decoder (what random_pack's packs fit)."""
    text = {
        "hidden_size": 48,
        "intermediate_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 200,
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 3]},
    }
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 48, "num_heads": 2}
    model = Qwen2VLForConditionalGeneration(
        Qwen2VLConfig(text_config=text, vision_config=vision, vocab_size=200)
    )
    model.config._name_or_path = name_or_path
    return model


def entry_for(repo_id: str, version: str = "1.0.0", **change: object) -> RegistryEntry:
    """A registry entry pinning what is published at ``repo_id`` ``version``."""
    pulled = pull(repo_id, f"v{version}")
    fields = {
        "target": TARGET,
        "repo_id": repo_id,
        "version": version,
        "commit": pulled.release.commit,
        "source": "tiny/llm",
        "pack_sha256": pulled.pack_sha256,
        "model_type": "qwen2_vl",
        "hidden_size": 48,
        "recommended": False,
    }
    return RegistryEntry(**{**fields, **change})


def write(path: Path, *entries: RegistryEntry) -> Path:
    return Registry(entries, str(path)).save(path)


# -- which model is it -----------------------------------------------------------------------------


def test_a_hub_snapshot_path_yields_id_and_revision() -> None:
    path = f"/home/u/.cache/huggingface/hub/models--Qwen--Qwen2-VL-2B-Instruct/snapshots/{SHA}"
    ident = identify_model(tiny_vlm(path))
    assert (ident.model_id, ident.revision) == ("Qwen/Qwen2-VL-2B-Instruct", SHA)
    assert (ident.model_type, ident.hidden_size) == ("qwen2_vl", 48)
    assert identify_model(path + "/").model_id == "Qwen/Qwen2-VL-2B-Instruct"


def test_a_hub_id_is_taken_as_is_and_a_local_folder_needs_model_id(tmp_path: Path) -> None:
    assert identify_model(tiny_vlm("org/model")).model_id == "org/model"
    assert identify_model("org/model", revision="v2").revision == "v2"
    with pytest.raises(PackNotFoundError, match="pass model_id='org/name'"):
        identify_model(tiny_vlm(str(tmp_path)))
    with pytest.raises(PackNotFoundError, match="pass model_id"):
        identify_model(tiny_vlm(""))
    assert identify_model(tiny_vlm(str(tmp_path)), model_id="org/model").model_id == "org/model"


# -- the order --------------------------------------------------------------------------------------


@pytest.fixture
def three_packs(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Packs for TARGET in three repos; a curated index on the Hub pins 'curated'."""
    packs = {
        "user": random_pack(seed=1, target_id=TARGET),
        "curated": random_pack(seed=2, target_id=TARGET),
        "found": random_pack(seed=3, target_id=TARGET, version="3.0.0"),
    }
    for name, pack in packs.items():
        publish(pack, f"l2v-test/{name}")
    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/registry")
    monkeypatch.delenv("L2V_HUB_REGISTRY", raising=False)
    push_index(write(tmp_path / "curated.json", entry_for("l2v-test/curated")), "l2v-test/registry")
    return packs


def test_the_user_registry_comes_first(
    three_packs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "L2V_HUB_REGISTRY", str(write(tmp_path / "mine.json", entry_for("l2v-test/user")))
    )
    found = find_pack(tiny_vlm(TARGET))
    assert found.pulled.pack == three_packs["user"] and found.found_in.startswith("user registry")


def test_then_the_curated_index_refreshed_from_the_hub(three_packs: dict) -> None:
    found = find_pack(TARGET)
    assert found.pulled.pack == three_packs["curated"]
    assert found.found_in == "curated index (Hub dataset l2v-test/registry)"


def test_discovery_lists_but_does_not_apply_an_unknown_uploaders_pack_without_opt_in(
    three_packs: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import l2v_hub

    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/no-such-index")  # -> the empty shipped copy
    monkeypatch.delenv("L2V_HUB_ALLOW_DISCOVERY", raising=False)
    publish(random_pack(seed=9, target_id=TARGET, version="9.0.0"), "stranger/popular-pack")
    model = tiny_vlm(TARGET)
    with pytest.raises(PackNotFoundError) as info:
        l2v_hub.patch(model)
    message = str(info.value)
    assert "found stranger/popular-pack@v9.0.0, l2v-test/found@v3.0.0" in message
    assert "NOT applied" in message and "allow_discovery=True" in message
    assert not any(m._forward_hooks for m in model.modules())
    monkeypatch.setenv("L2V_HUB_ALLOW_DISCOVERY", "0")
    with pytest.raises(PackNotFoundError, match="NOT applied"):
        resolve_pack(TARGET)

    with (
        caplog.at_level(logging.WARNING, logger="l2v_hub"),
        l2v_hub.patch(model, allow_discovery=True) as handle,  # opted in, per call
    ):
        assert handle.pack.directions.equal(random_pack(seed=9).directions)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING and "discovery" in r.message]
    assert warning and "stranger/popular-pack@v9.0.0" in warning[0].message
    assert "NOT in a registry" in warning[0].message
    monkeypatch.setenv("L2V_HUB_ALLOW_DISCOVERY", "1")  # opted in, per environment
    found = find_pack(TARGET)
    assert found.pulled.release.repo_id == "stranger/popular-pack"
    assert found.found_in.startswith("discovery on the Hub at")
    with pytest.raises(PackNotFoundError, match="NOT applied"):  # a call may still say no
        resolve_pack(TARGET, allow_discovery=False)


def test_a_registry_entry_with_a_wrong_commit_or_hash_is_refused(
    three_packs: dict, tmp_path: Path
) -> None:
    wrong_commit = write(tmp_path / "a.json", entry_for("l2v-test/user", commit="f" * 40))
    with pytest.raises(PackError, match=r"l2v-test/user v1\.0\.0 .* refused"):
        resolve_pack(TARGET, registry=wrong_commit)
    wrong_hash = write(tmp_path / "b.json", entry_for("l2v-test/user", pack_sha256="0" * 64))
    with pytest.raises(PackError, match=r"pins pack\.json sha256 0{64}"):
        resolve_pack(TARGET, registry=wrong_hash)
    other_commit = entry_for("l2v-test/curated").commit  # a real commit, of another repo's pack
    wrong_repo = write(tmp_path / "c.json", entry_for("l2v-test/user", commit=other_commit))
    with pytest.raises(PackError, match="refused"):
        resolve_pack(TARGET, registry=wrong_repo)


def test_nothing_found_says_where_it_looked_and_lists_the_closest_packs(three_packs: dict) -> None:
    with pytest.raises(PackNotFoundError) as info:
        resolve_pack(tiny_vlm("other/vlm"))
    message = str(info.value)
    assert "no registered l2v-hub pack for other/vlm" in message
    assert (
        "user registry: none" in message
        and "curated index (Hub dataset l2v-test/registry): no entry" in message
    )
    assert "discovery on the Hub at" in message
    assert (
        "closest packs (same architecture and hidden size): l2v-test/curated@v1.0.0 (for tiny/vlm)"
        in message
    )


@pytest.mark.parametrize("where", ["hub", "hf_offline"])
def test_nothing_found_with_no_published_pack_ends_with_the_next_step(
    where: str, request: pytest.FixtureRequest
) -> None:
    """The first thing a user tries (issue 20): the shipped index is empty, online or offline."""
    request.getfixturevalue(where)
    with pytest.raises(PackNotFoundError) as info:
        resolve_pack(tiny_vlm("Qwen/Qwen2-VL-2B-Instruct"))
    message = str(info.value)
    assert "lists no pack yet (none is published)" in message
    assert message.endswith(next_step("Qwen/Qwen2-VL-2B-Instruct")), message
    tail = message[message.index("Next step"):]
    assert ("l2v-hub build --llm HuggingFaceTB/SmolLM2-135M-Instruct --target "
            "Qwen/Qwen2-VL-2B-Instruct --calibrate --out packs/qwen2-vl-2b-instruct") in tail
    assert "l2v_hub.patch(model, 'packs/qwen2-vl-2b-instruct')" in tail
    assert "org/name@version" in tail


def test_a_store_resolves_with_no_network(hf_offline: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    pack = random_pack(target_id=TARGET)
    release = publish(pack, "org/pack", store=store)
    assert resolve_pack(TARGET, store=store, allow_discovery=True) == pack  # discovery, allowed
    pulled = pull("org/pack", store=store)
    registry = write(
        tmp_path / "mine.json",
        RegistryEntry(
            TARGET,
            "org/pack",
            "1.0.0",
            release.commit,
            "tiny/llm",
            pulled.pack_sha256,
            "qwen2_vl",
            48,
        ),
    )
    assert find_pack(TARGET, registry=registry, store=store).found_in == f"user registry {registry}"


SCRIPT = """
import json, sys, torch
import l2v_hub
from transformers import Qwen2VLForConditionalGeneration
from l2v_hub.hub import find_pack
model = Qwen2VLForConditionalGeneration.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([[5, 17, 42, 9, 3]])
kw = {"input_ids": ids, "mm_token_type_ids": torch.zeros_like(ids)}
plain = model(**kw).logits
with l2v_hub.patch(model) as handle:  # the one line: resolved by the model's id
    steered = model(**kw).logits
found = find_pack(model)
print(json.dumps({"found_in": found.found_in, "commit": found.pulled.release.commit,
                  "meta": handle.pack.metadata(), "steered": not torch.equal(plain, steered),
                  "restored": torch.equal(plain, model(**kw).logits)}))
"""


def test_end_to_end_in_a_fresh_process_then_again_with_the_server_stopped(
    three_packs: dict, hub: HubServer, tmp_path: Path
) -> None:
    snapshot = tmp_path / "hf" / "models--tiny--vlm" / "snapshots" / SHA
    tiny_vlm().save_pretrained(snapshot)
    runs = []
    for _ in range(2):  # the environment points the subprocess at the test Hub and its cache
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(snapshot)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        hub.stop()
    assert runs[0] == runs[1]
    assert runs[0]["meta"] == three_packs["curated"].metadata()
    assert runs[0]["steered"] and runs[0]["restored"]
    assert runs[0]["found_in"] == "curated index (Hub dataset l2v-test/registry)"
