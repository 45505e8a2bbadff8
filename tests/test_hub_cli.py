"""The Hub and registry commands: publish, pull, list, search, registry add / validate / push."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import random_pack
from hubserver import HubServer

from l2v_hub.cli import main

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "registry" / "schema.json").read_text())


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_help_everywhere() -> None:
    for args in (
        ["publish"],
        ["pull"],
        ["list"],
        ["search"],
        ["registry"],
        ["registry", "add"],
        ["registry", "validate"],
        ["registry", "push"],
    ):
        code, out = run(*args, "--help")
        assert code == 0 and "Usage:" in out, args


def test_publish_and_pull_with_a_store(tmp_path: Path, hf_offline: Path) -> None:
    folder = str(random_pack().save_pretrained(tmp_path / "pack"))
    store = str(tmp_path / "store")
    code, out = run("publish", folder, "--repo", "org/tiny", "--store", store, "--json")
    assert code == 0, out
    release = json.loads(out)
    assert release["version"] == "1.0.0" and len(release["commit"]) == 40
    code, out = run("pull", "org/tiny@v1.0.0", "--store", store, "--json")
    assert code == 0 and json.loads(out)["commit"] == release["commit"]
    assert json.loads(out)["folder"] == str(tmp_path / "store" / "org" / "tiny" / "1.0.0")
    other = str(random_pack(seed=1).save_pretrained(tmp_path / "other"))
    code, out = run("publish", other, "--repo", "org/tiny", "--store", store)
    assert code == 1 and "bump the version" in out and "Traceback" not in out
    code, out = run("publish", other, "--repo", "org/tiny", "--store", store, "--version", "1.0.1")
    assert code == 0 and "org/tiny@v1.0.1" in out


def test_publish_without_repo_proposes_a_name(tmp_path: Path) -> None:
    folder = str(random_pack(target_id="Org/Tiny-VLM").save_pretrained(tmp_path / "pack"))
    code, out = run("publish", folder)
    assert code == 2 and "--repo YOUR_ORG/l2v-cot-llm-to-tiny-vlm" in out


def test_bad_references_are_one_line_failures(tmp_path: Path, hf_offline: Path) -> None:
    code, out = run("pull", "org/none", "--store", str(tmp_path))
    assert code == 1 and out.count("\n") == 1 and "no pack repo 'org/none'" in out
    code, out = run("pull", "not-a-ref", "--store", str(tmp_path))
    assert code == 2 and "expected org/name[@revision]" in out
    assert run("pull")[0] == 2 and run("publish", str(tmp_path / "missing"))[0] == 2


def test_registry_add_pins_the_commit_then_push_list_and_search(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = str(random_pack().save_pretrained(tmp_path / "pack"))
    assert run("publish", folder, "--repo", "l2v-test/tiny")[0] == 0
    index = tmp_path / "index.json"
    code, out = run(
        "registry", "add", "l2v-test/tiny@v1.0.0", "--index", str(index), "--recommended"
    )
    assert code == 0, out
    data = json.loads(index.read_text())
    jsonschema.validate(data, SCHEMA)
    [entry] = data["entries"]
    assert entry["commit"] == hub.head("l2v-test/tiny", "v1.0.0") and entry["recommended"]
    assert entry["target"] == "tiny/vlm" and entry["hidden_size"] == 48
    assert run("registry", "validate", "--index", str(index)) == (0, f"{index}: valid, 1 entry\n")
    code, out = run("registry", "validate", "--index", str(index), "--json")
    assert code == 0 and json.loads(out) == {"origin": str(index), "valid": True, "entries": [entry]}
    again = tmp_path / "again.json"  # --json of add: the entry it wrote, and where
    code, out = run("registry", "add", "l2v-test/tiny@v1.0.0", "--index", str(again), "--json")
    assert code == 0, out
    assert json.loads(out) == {"index": str(again),
                               "entry": {**entry, "recommended": False}}

    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/index")
    code, out = run("registry", "push", "--index", str(index), "--json")
    assert code == 0 and json.loads(out)["repo_id"] == "l2v-test/index"
    code, out = run("list", "tiny/vlm", "--json")
    assert code == 0
    [listed] = json.loads(out)
    assert (
        listed["commit"] == entry["commit"]
        and listed["registry"] == "curated index (Hub dataset l2v-test/index)"
    )

    code, out = run("search", "tiny/vlm", "--json")
    assert code == 0 and json.loads(out) == [
        {"repo_id": "l2v-test/tiny", "latest": "1.0.0", "versions": ["1.0.0"]}
    ]
    assert run("search", "other/vlm")[1].startswith("no pack on the Hub at")
    assert run("search", "tiny/vlm") == (0, "l2v-test/tiny  latest v1.0.0  (1 version)\n")
    assert run("publish", folder, "--repo", "l2v-test/tiny", "--version", "1.1.0")[0] == 0
    assert run("search", "tiny/vlm") == (0, "l2v-test/tiny  latest v1.1.0  (2 versions)\n")


def test_registry_validate_refuses_a_broken_index(tmp_path: Path) -> None:
    assert run("registry", "validate")[0] == 0  # the shipped copy
    bad = tmp_path / "index.json"
    bad.write_text(json.dumps({"schema_version": 1, "entries": [{"target": "x/y"}]}))
    code, out = run("registry", "validate", "--index", str(bad))
    assert code == 1 and "entries[0]: missing" in out
