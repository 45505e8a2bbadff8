"""Registries: the shipped index and its schema, validation, ordering, user and curated files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from l2v_hub.errors import HubError
from l2v_hub.hub import Registry, RegistryEntry, load_curated, load_shipped, load_user
from l2v_hub.hub.registry import shipped_dir

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "registry" / "schema.json").read_text())


def entry(**change: object) -> dict:
    base = {
        "target": "org/vlm",
        "repo_id": "packs/p",
        "version": "1.0.0",
        "commit": "a" * 40,
        "source": "org/llm",
        "pack_sha256": "b" * 64,
        "model_type": "qwen2_vl",
        "hidden_size": 48,
        "recommended": False,
        "notes": "",
    }
    return {**base, **change}


def test_shipped_index_validates_against_its_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    index = json.loads((ROOT / "registry" / "index.json").read_text())
    jsonschema.validate(index, SCHEMA)
    assert shipped_dir() == ROOT / "registry"
    assert load_shipped().to_json() == index


BAD = [
    ("version", "1.0"),
    ("version", "01.0.0"),
    ("commit", "A" * 40),
    ("commit", "a" * 39),
    ("pack_sha256", "b" * 63),
    ("target", "../etc"),
    ("repo_id", "/abs/path"),
    ("hidden_size", 0),
    ("hidden_size", True),
    ("hidden_size", "48"),
    ("recommended", 1),
    ("model_type", ""),
    ("notes", 3),
    ("source", ""),
]


@pytest.mark.parametrize(("key", "value"), BAD)
def test_runtime_validation_agrees_with_the_schema(key: str, value: object) -> None:
    doc = {"schema_version": 1, "entries": [entry(**{key: value})]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, SCHEMA)
    with pytest.raises(HubError, match=rf"entries\[0\]\.{key} must be"):
        Registry.parse(doc, "index.json")


def test_structural_errors_are_refused_by_both() -> None:
    missing = entry()
    del missing["commit"]
    for doc in (
        {"schema_version": 2, "entries": []},
        {"schema_version": 1, "entries": {}},
        {"schema_version": 1, "entries": [], "extra": 1},
        {"schema_version": 1, "entries": [missing]},
        {"schema_version": 1, "entries": [{**entry(), "surprise": 1}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, SCHEMA)
        with pytest.raises(HubError):
            Registry.parse(doc, "index.json")


def test_valid_entries_are_accepted_by_both() -> None:
    doc = {
        "schema_version": 1,
        "entries": [entry(), entry(version="1.1.0-rc.1+build.5", notes="x")],
    }
    jsonschema.validate(doc, SCHEMA)
    assert len(Registry.parse(doc, "i").entries) == 2


def test_duplicates_and_two_recommended_packs_are_refused() -> None:
    with pytest.raises(HubError, match="listed twice"):
        Registry.parse({"schema_version": 1, "entries": [entry(), entry()]}, "i")
    two = [entry(recommended=True), entry(repo_id="packs/q", recommended=True)]
    with pytest.raises(HubError, match="more than one recommended pack for org/vlm"):
        Registry.parse({"schema_version": 1, "entries": two}, "i")


def test_for_target_puts_the_recommended_entry_first_then_highest_version() -> None:
    reg = Registry.parse(
        {
            "schema_version": 1,
            "entries": [
                entry(version="1.2.0"),
                entry(version="1.10.0"),
                entry(version="1.0.0", recommended=True),
                entry(target="org/other", version="9.0.0"),
            ],
        },
        "i",
    )
    assert [e.version for e in reg.for_target("org/vlm")] == ["1.0.0", "1.10.0", "1.2.0"]
    assert reg.for_target("org/none") == []
    assert len(reg.for_target("ORG/VLM")) == 3  # Hub ids are case-insensitive


def test_with_entry_replaces_the_same_release_and_moves_the_recommendation(tmp_path: Path) -> None:
    reg = Registry.parse({"schema_version": 1, "entries": [entry(recommended=True)]}, "i")
    new = RegistryEntry(**{**entry(version="2.0.0", recommended=True)})
    updated = reg.with_entry(new).with_entry(new)
    assert [(e.version, e.recommended) for e in updated.entries] == [
        ("1.0.0", False),
        ("2.0.0", True),
    ]
    path = updated.save(tmp_path / "sub" / "index.json")
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)
    assert Registry.load(path).entries == updated.entries


def test_user_registry_from_argument_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"schema_version": 1, "entries": [entry()]}))
    monkeypatch.delenv("L2V_HUB_REGISTRY", raising=False)
    assert load_user() is None
    assert load_user(path).entries[0].repo_id == "packs/p"
    monkeypatch.setenv("L2V_HUB_REGISTRY", str(path))
    assert load_user().origin == f"user registry {path}"
    with pytest.raises(HubError, match="no such registry file"):
        load_user(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(HubError, match="cannot be read as JSON"):
        load_user(path)


def test_curated_index_offline_is_the_shipped_copy(hf_offline: Path) -> None:
    assert load_curated().origin == "curated index (copy shipped with l2v-hub)"


def test_entry_round_trips_through_json() -> None:
    data = entry(notes="reviewed")
    assert RegistryEntry(**data).to_json() == data
    bare = copy.deepcopy(data)
    bare["notes"] = ""
    assert "notes" not in RegistryEntry(**bare).to_json()
