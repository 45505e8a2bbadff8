"""Trust on the pull path, against the test Hub: moved tags refused, a damaged cache healed (or
named offline), messages that say where the bytes came from, files that follow the umask, a failed
index fetch not cached for the TTL, and pack.py free of any import of l2v_hub.hub."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import random_pack
from hub_fixtures import go_offline
from hubserver import HubServer
from huggingface_hub import CommitOperationAdd, HfApi

from l2v_hub import Defaults
from l2v_hub.cli import main
from l2v_hub.errors import PackError
from l2v_hub.hub import Registry, load_curated, publish, pull, push_index, register
from l2v_hub.hub.registry import _check_marker
from l2v_hub.hub.store import Store
from l2v_hub.hub.tags import forget_source

REPO = "l2v-test/tiny-pack"


def move_tag(tmp_path: Path, tag: str, pack_folder: Path) -> str:
    """Delete ``tag`` and make it again on a new commit holding ``pack_folder``'s files."""
    api = HfApi()
    ops = [CommitOperationAdd(p.name, str(p)) for p in pack_folder.iterdir()]
    commit = api.create_commit(REPO, ops, commit_message="moved").oid
    api.delete_tag(REPO, tag=tag)
    api.create_tag(REPO, tag=tag, revision=commit)
    return commit


def test_a_moved_tag_is_refused_naming_both_commits_and_the_override_accepts_it(
    hub: HubServer, tmp_path: Path
) -> None:
    first = publish(random_pack(), REPO)
    assert pull(REPO, "v1.0.0").release.commit == first.commit  # trust on first use
    moved = random_pack()
    moved.defaults = Defaults(strength=5.0, layers=moved.defaults.layers)  # a consistent pack.json
    new = move_tag(tmp_path, "v1.0.0", moved.save_pretrained(tmp_path / "moved"))
    for revision in ("v1.0.0", None):  # by tag, and as the default version
        with pytest.raises(PackError) as info:
            pull(REPO, revision)
        message = str(info.value)
        assert first.commit in message and new in message and "--accept-moved-tag" in message
    code = CliRunner().invoke(main, ["pull", f"{REPO}@v1.0.0"])
    assert code.exit_code == 1 and new in code.output
    accepted = CliRunner().invoke(main, ["pull", f"{REPO}@v1.0.0", "--accept-moved-tag", "--json"])
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["commit"] == new
    assert pull(REPO).pack.defaults.strength == 5.0  # accepted once, then remembered
    assert pull(REPO, first.commit).pack.defaults.strength == 0.1  # a commit pin never moves


def test_a_flipped_byte_in_the_cache_is_healed_online_and_named_offline(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = random_pack()
    publish(pack, REPO)
    folder = pull(REPO).folder
    expected = json.loads((folder / "pack.json").read_text())["files"]["directions.safetensors"]
    blob = (folder / "directions.safetensors").resolve()

    def flip() -> None:
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0x01
        blob.write_bytes(bytes(data))

    flip()
    downloads = hub.counts["download"]
    healed = pull(REPO)  # online: fetched again, verified
    assert hub.counts["download"] == downloads + 1
    path = healed.folder / "directions.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == expected["sha256"]
    assert healed.pack == pack and healed.where == f"the Hub at {hub.url}"

    blob = path.resolve()
    flip()
    go_offline(monkeypatch)
    with pytest.raises(PackError) as info:
        pull(REPO)
    message = str(info.value)
    assert f"delete {blob}" in message and "local Hugging Face cache" in message
    assert "the file on the Hub is wrong" not in message


def test_a_file_wrong_on_the_hub_is_blamed_on_the_hub_after_a_fresh_download(
    hub: HubServer,
) -> None:
    publish(random_pack(), REPO)
    pull(REPO)
    blob = (pull(REPO).folder / "directions.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")  # the cache is damaged ...
    hub.tamper(REPO, "directions.safetensors")  # ... and so is the Hub's copy
    with pytest.raises(PackError, match=r"also in a fresh download from the Hub at .* is wrong"):
        pull(REPO)


def test_pull_says_truthfully_where_the_bytes_came_from(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(random_pack(), REPO)
    assert pull(REPO).where == f"the Hub at {hub.url}"
    again = pull(REPO).where
    assert again.startswith("the local Hugging Face cache") and f"checked on the Hub at {hub.url}" in again
    go_offline(monkeypatch)
    offline = CliRunner().invoke(main, ["pull", REPO])
    assert offline.exit_code == 0, offline.output
    assert "from the local Hugging Face cache" in offline.output and "HF_HUB_OFFLINE=1" in offline.output
    assert "from the Hub at" not in offline.output


def test_files_and_folders_follow_the_umask(
    tmp_path: Path, hf_offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def modes(mask: int, name: str) -> set[tuple[str, int]]:
        old = os.umask(mask)
        try:
            folder = random_pack().save_pretrained(tmp_path / name / "pack")
            store = tmp_path / name / "store"
            publish(folder, "org/tiny", store=store)
            pull("org/tiny", "v1.0.0", store=store)  # records the tag under HF_HOME
            index = tmp_path / name / "registry.json"
            register(index, "org/tiny", "v1.0.0", store=store)
        finally:
            os.umask(old)
        records = [p for p in hf_offline.rglob("v1.0.0") if f"-{name}-store-" in p.as_posix()]
        assert len(records) == 1, records  # the tag record of this store
        written = [*folder.iterdir(), store / "org" / "tiny" / "1.0.0", index,
                   *(store / "org" / "tiny" / "1.0.0").iterdir(), *records]
        return {("dir" if p.is_dir() else "file", p.stat().st_mode & 0o777) for p in written}

    assert modes(0o022, "shared") == {("file", 0o644), ("dir", 0o755)}
    assert modes(0o077, "private") == {("file", 0o600), ("dir", 0o700)}


def test_a_failed_index_fetch_is_retried_soon_and_a_push_is_seen_at_once(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/index")
    monkeypatch.delenv("L2V_HUB_INDEX_TTL", raising=False)  # the default hour
    assert "shipped" in load_curated().origin  # no index on the Hub yet
    publish(random_pack(), REPO)
    index = tmp_path / "index.json"
    register(index, REPO, "v1.0.0")
    api = HfApi()  # pushed from another machine: this one's failure record stays
    api.create_repo("l2v-test/index", repo_type="dataset")
    api.upload_file(path_or_fileobj=str(index), path_in_repo="index.json",
                    repo_id="l2v-test/index", repo_type="dataset")
    assert "shipped" in load_curated().origin  # a failure is remembered briefly ...
    failed = _check_marker("l2v-test/index").with_suffix(".failed")
    past = time.time() - 61
    os.utime(failed, (past, past))
    assert load_curated().origin == "curated index (Hub dataset l2v-test/index)"  # ... not an hour

    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/index2")
    assert "shipped" in load_curated().origin
    push_index(index, "l2v-test/index2")  # pushed from here: seen at once
    assert load_curated().origin == "curated index (Hub dataset l2v-test/index2)"
    assert isinstance(load_curated(), Registry)


def test_pack_py_never_imports_the_hub_package() -> None:
    source = Path(__file__).resolve().parents[1] / "l2v_hub" / "pack.py"
    imported = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            imported.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
    assert imported and not [m for m in imported if m.startswith((".hub", "l2v_hub.hub"))], imported


def test_two_stores_at_the_same_relative_path_are_two_sources_and_an_owner_can_start_over(
    hf_offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two checkouts each with their own .cache/demo/store: the same relative path, other packs
    # (make demo in a second clone was refused as a moved tag of the first clone's store).

    commits = []
    for seed, checkout in enumerate(("a", "b")):
        (tmp_path / checkout).mkdir()
        monkeypatch.chdir(tmp_path / checkout)
        commits.append(publish(random_pack(seed=seed), REPO, store="store").commit)
        assert pull(REPO, "v1.0.0", store="store").release.commit == commits[-1]
    assert commits[0] != commits[1]
    # Within one checkout, a store rebuilt in place is refused, until its owner forgets it.
    shutil.rmtree("store")
    rebuilt = publish(random_pack(seed=2), REPO, store="store").commit
    with pytest.raises(PackError, match="released versions must not move"):
        pull(REPO, "v1.0.0", store="store")
    forget_source(Store("store").where)
    assert pull(REPO, "v1.0.0", store="store").release.commit == rebuilt
