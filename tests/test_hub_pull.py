"""Pulling from the test Hub over HTTP: default version, pins, verification, cache and offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import random_pack
from hub_fixtures import go_offline
from hubserver import HubServer
from huggingface_hub import CommitOperationAdd, HfApi

from l2v_hub import Pack
from l2v_hub.errors import ArgumentError, PackError, PackNotFoundError
from l2v_hub.hub import parse_ref, publish, pull

REPO = "l2v-test/tiny-pack"


def push_by_hand(tmp_path: Path, files: dict[str, bytes], tag: str) -> str:
    """A commit with exactly ``files`` and a tag on it, made with the plain Hub client."""
    ops = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=data) for n, data in files.items()]
    api = HfApi()
    api.create_repo(REPO, exist_ok=True)
    commit = api.create_commit(REPO, ops, commit_message="by hand").oid
    api.create_tag(REPO, tag=tag, revision=commit)
    return commit


def pack_files(pack: Pack, tmp_path: Path) -> dict[str, bytes]:
    folder = pack.save_pretrained(tmp_path / f"pack-{pack.version}")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_the_highest_version_is_the_default_and_old_ones_stay_pinned(hub: HubServer) -> None:
    packs = {v: random_pack(seed=i, version=v) for i, v in enumerate(["1.2.0", "1.10.0", "1.9.0"])}
    releases = {v: publish(p, REPO) for v, p in packs.items()}
    latest = pull(REPO)
    assert latest.release == releases["1.10.0"] and latest.pack == packs["1.10.0"]
    assert pull(REPO, "v1.2.0").pack == packs["1.2.0"]
    assert pull(REPO, releases["1.9.0"].commit).pack == packs["1.9.0"]
    assert Pack.from_pretrained(REPO, revision="1.2.0") == packs["1.2.0"]
    assert Pack.from_pretrained(REPO) == packs["1.10.0"]


def test_prereleases_are_the_default_only_when_nothing_else_exists(hub: HubServer) -> None:
    publish(random_pack(version="2.0.0-rc.1"), REPO)
    assert pull(REPO).release.version == "2.0.0-rc.1"
    publish(random_pack(version="1.0.0"), REPO)
    assert pull(REPO).release.version == "1.0.0"


def test_main_is_never_the_default(hub: HubServer) -> None:
    publish(random_pack(), REPO)
    HfApi().upload_file(path_or_fileobj=b"{}", path_in_repo="pack.json", repo_id=REPO)
    assert pull(REPO).release.version == "1.0.0"
    with pytest.raises(ArgumentError, match="neither a version tag") as info:
        pull(REPO, "main")
    assert isinstance(info.value, ValueError)  # an argument error: `except ValueError` catches it


def test_a_file_altered_on_the_server_is_refused_naming_it(hub: HubServer) -> None:
    publish(random_pack(), REPO)
    hub.tamper(REPO, "directions.safetensors")
    with pytest.raises(PackError, match=r"directions\.safetensors.*sha256"):
        pull(REPO)


def test_an_altered_pack_json_is_refused_naming_it(hub: HubServer) -> None:
    publish(random_pack(), REPO)
    hub.tamper(REPO, "pack.json")
    with pytest.raises(PackError, match=r"pack\.json"):
        pull(REPO)


def test_only_the_files_the_pack_names_are_downloaded(hub: HubServer, tmp_path: Path) -> None:
    files = pack_files(random_pack(), tmp_path)
    commit = push_by_hand(tmp_path, {**files, "big.bin": b"x" * 5000}, "v1.0.0")
    pulled = pull(REPO)
    assert pulled.release.commit == commit
    assert not (pulled.folder / "big.bin").exists()
    assert not [entry for entry in hub.log if "big.bin" in entry[2]]


def test_file_names_that_climb_out_are_refused_before_any_download(
    hub: HubServer, tmp_path: Path
) -> None:
    files = pack_files(random_pack(), tmp_path)
    meta = json.loads(files["pack.json"])
    meta["files"]["../../escape.txt"] = {"sha256": "0" * 64, "size": 1}
    push_by_hand(tmp_path, {**files, "pack.json": json.dumps(meta).encode()}, "v1.0.0")
    with pytest.raises(PackError, match="must stay inside the pack folder"):
        pull(REPO)
    assert not [entry for entry in hub.log if "escape" in entry[2]]


def test_a_tag_that_disagrees_with_pack_json_is_refused(hub: HubServer, tmp_path: Path) -> None:
    push_by_hand(tmp_path, pack_files(random_pack(version="1.0.0"), tmp_path), "v2.0.0")
    with pytest.raises(PackError, match=r"says version 1\.0\.0, but it is tagged v2\.0\.0"):
        pull(REPO)


def test_missing_repo_version_or_commit_names_repo_and_revision(hub: HubServer) -> None:
    with pytest.raises(PackNotFoundError, match="no pack repo 'l2v-test/none'"):
        pull("l2v-test/none")
    publish(random_pack(), REPO)
    with pytest.raises(PackNotFoundError, match=r"no version v3\.0\.0 .*versions: v1\.0\.0"):
        pull(REPO, "v3.0.0")
    with pytest.raises(PackNotFoundError, match=f"{REPO}.*{'e' * 40}"):
        pull(REPO, "e" * 40)


def test_offline_a_cached_pack_loads_and_an_uncached_one_names_repo_and_revision(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack, other = random_pack(), random_pack(seed=1, version="1.1.0")
    v1 = publish(pack, REPO)
    publish(other, REPO)
    pull(REPO, "v1.0.0")
    go_offline(monkeypatch)
    before = sum(hub.counts.values())
    assert pull(REPO).pack == pack  # offline, the highest *cached* version is the default
    assert pull(REPO, v1.commit).pack == pack
    assert sum(hub.counts.values()) == before  # nothing asked of the Hub
    with pytest.raises(PackNotFoundError, match=r"no version v1\.1\.0"):
        pull(REPO, "v1.1.0")
    with pytest.raises(PackNotFoundError, match=r"l2v-test/other.*HF_HUB_OFFLINE=1"):
        pull("l2v-test/other")
    with pytest.raises(PackNotFoundError, match=rf"{REPO}@{'d' * 40}.*HF_HUB_OFFLINE=1"):
        pull(REPO, "d" * 40)


def test_a_second_pull_with_the_server_stopped_is_served_from_the_cache(hub: HubServer) -> None:
    pack = random_pack()
    release = publish(pack, REPO)
    assert pull(REPO).pack == pack
    hub.stop()
    again = pull(REPO)
    assert again.pack == pack and again.release == release
    assert pull(REPO, release.commit).pack == pack


def test_parse_ref() -> None:
    assert parse_ref("org/name") == ("org/name", None)
    assert parse_ref("org/name@v1.2.0") == ("org/name", "v1.2.0")
    with pytest.raises(ValueError, match="org/name"):
        parse_ref("name-only")
    with pytest.raises(ArgumentError, match="'banana' of 'org/name' is neither"):
        parse_ref("org/name@banana")


def test_a_malformed_pack_json_is_a_pack_error_before_any_other_download(
    hub: HubServer, tmp_path: Path
) -> None:
    files = pack_files(random_pack(), tmp_path)
    meta = json.loads(files["pack.json"])
    meta["files"]["directions.safetensors"] = 3
    push_by_hand(tmp_path, {**files, "pack.json": json.dumps(meta).encode()}, "v1.0.0")
    with pytest.raises(PackError, match=r"'files\.directions\.safetensors' must be an object"):
        pull(REPO)
    assert not [e for e in hub.log if "directions" in e[2] and e[1] == "GET"]
