"""The local store: publish and pull through the same code path as the Hub, with no network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import random_pack

from l2v_hub import Pack
from l2v_hub.errors import ArgumentError, HubError, PackError, PackNotFoundError
from l2v_hub.hub import Store, publish, pull

PACK_FILES = ["README.md", "directions.safetensors", "pack.json", "stats.json"]


def test_publish_lays_out_by_repo_and_version_and_pulls_back(tmp_path: Path) -> None:
    store, pack = tmp_path / "store", random_pack()
    release = publish(pack, "org/tiny", store=store)
    folder = store / "org" / "tiny" / "1.0.0"
    assert sorted(os.listdir(folder)) == PACK_FILES
    assert release.version == "1.0.0" and len(release.commit) == 40
    pulled = pull("org/tiny", store=store)
    assert pulled.pack == pack and pulled.release == release and pulled.folder == folder
    assert [p.name for p in (store / "org" / "tiny").iterdir()] == ["1.0.0"]  # no staging left


def test_existing_version_same_content_is_a_no_op_other_content_is_refused(tmp_path: Path) -> None:
    store, pack = tmp_path / "store", random_pack()
    first = publish(pack, "org/tiny", store=store)
    assert publish(pack, "org/tiny", store=store) == first
    with pytest.raises(HubError, match=r"v1\.0\.0 is already published.*bump the version"):
        publish(random_pack(seed=1), "org/tiny", store=store)
    assert pull("org/tiny", store=store).pack == pack


def test_new_version_is_the_default_and_old_one_stays_pinnable(tmp_path: Path) -> None:
    store, old, new = tmp_path / "store", random_pack(seed=0), random_pack(seed=1)
    v1 = publish(old, "org/tiny", store=store)
    v2 = publish(new, "org/tiny", version="1.1.0", store=store)
    assert v2.version == "1.1.0" and v2.commit != v1.commit
    assert pull("org/tiny", store=store).pack == new.with_version("1.1.0")
    assert pull("org/tiny", "v1.0.0", store=store).pack == old
    assert pull("org/tiny", "1.0.0", store=store).pack == old
    assert pull("org/tiny", v1.commit, store=store).release == v1


def test_publish_a_folder_under_another_version_leaves_the_folder_alone(tmp_path: Path) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    before = (folder / "pack.json").read_bytes()
    release = publish(folder, "org/tiny", version="v2.0.0", store=tmp_path / "store")
    assert release.version == "2.0.0"
    assert (folder / "pack.json").read_bytes() == before
    assert (
        json.loads((tmp_path / "store/org/tiny/2.0.0/pack.json").read_bytes())["version"] == "2.0.0"
    )


def test_only_the_files_the_pack_names_are_published(tmp_path: Path) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    (folder / "notes.txt").write_text("private scratch")
    publish(folder, "org/tiny", store=tmp_path / "store")
    assert sorted(os.listdir(tmp_path / "store/org/tiny/1.0.0")) == PACK_FILES


def test_a_file_altered_in_the_store_is_refused_naming_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(random_pack(), "org/tiny", store=store)
    target = store / "org/tiny/1.0.0/directions.safetensors"
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(PackError, match=r"directions\.safetensors: sha256 mismatch.*org/tiny"):
        pull("org/tiny", store=store)


def test_missing_repo_version_and_commit_name_what_was_asked(tmp_path: Path) -> None:
    store = tmp_path / "store"
    publish(random_pack(), "org/tiny", store=store)
    with pytest.raises(PackNotFoundError, match="no pack repo 'org/other'"):
        pull("org/other", store=store)
    with pytest.raises(PackNotFoundError, match=r"no version v9\.0\.0.*versions: v1\.0\.0"):
        pull("org/tiny", "v9.0.0", store=store)
    with pytest.raises(PackNotFoundError, match=r"no revision 'f{40}'"):
        pull("org/tiny", "f" * 40, store=store)
    with pytest.raises(ArgumentError, match="neither a version tag"):
        pull("org/tiny", "main", store=store)


def test_store_from_the_environment_serves_pack_from_pretrained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("L2V_HUB_STORE", str(tmp_path / "store"))
    pack = random_pack()
    pack.push_to_hub("org/tiny")
    assert Pack.from_pretrained("org/tiny") == pack
    assert Pack.from_pretrained("org/tiny", revision="v1.0.0") == pack


def test_discover_finds_repos_by_target_model(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    publish(random_pack(target_id="a/vlm"), "org/one", store=store)
    publish(random_pack(target_id="a/vlm", version="2.0.0"), "org/two", store=store)
    publish(random_pack(target_id="b/vlm"), "org/three", store=store)
    assert store.discover("a/vlm") == ["org/one", "org/two"]
    assert store.discover("c/vlm") == []


def test_a_store_refuses_pull_requests_and_bare_names(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="no pull requests"):
        publish(random_pack(), "org/tiny", store=tmp_path / "s", create_pr=True)
    with pytest.raises(ArgumentError, match="org/name"):
        Store(tmp_path / "s").versions("tiny")


def test_from_pretrained_tells_folders_from_repo_ids(
    tmp_path: Path, hf_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = random_pack().save_pretrained(tmp_path / "org" / "tiny")
    with pytest.raises(PackError, match="applies to Hub repos"):
        Pack.from_pretrained(folder, revision="v1.0.0")
    monkeypatch.chdir(tmp_path)
    assert Pack.from_pretrained("org/tiny") == random_pack()  # an existing folder wins
    with pytest.raises(PackNotFoundError, match=r"org/absent.*HF_HUB_OFFLINE=1"):
        Pack.from_pretrained("org/absent")  # offline: the Hub cache only
    with pytest.raises(PackError, match="no pack folder"):
        Pack.from_pretrained(tmp_path / "nowhere")
