"""Publishing to the test Hub over HTTP with the real huggingface_hub client."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import random_pack
from hubserver import HubServer
from huggingface_hub import HfApi

from l2v_hub.errors import ArgumentError, HubError, PackError
from l2v_hub.hub import publish, pull, retry, suggest_repo_name

REPO = "l2v-test/tiny-pack"
PACK_FILES = [".gitattributes", "README.md", "directions.safetensors", "pack.json", "stats.json"]


def test_one_commit_naming_the_version_then_the_tag(hub: HubServer) -> None:
    pack = random_pack()
    release = publish(pack, REPO)
    api = HfApi()
    assert hub.counts["commit"] == 1 and hub.counts["tag"] == 1
    tags = {t.name: t.target_commit for t in api.list_repo_refs(REPO).tags}
    assert tags == {"v1.0.0": release.commit}
    assert api.list_repo_commits(REPO)[0].title == "Publish v1.0.0"
    assert sorted(api.list_repo_files(REPO, revision="v1.0.0")) == PACK_FILES
    # The card makes the Hub list the pack under the model it steers.
    info = api.model_info(REPO)
    assert info.library_name == "l2v-hub"
    assert "base_model:adapter:tiny/vlm" in info.tags
    assert [m.id for m in api.list_models(filter=["l2v-hub", "base_model:adapter:tiny/vlm"])] == [
        REPO
    ]


def test_an_existing_version_with_other_content_is_refused_and_nothing_changes(
    hub: HubServer,
) -> None:
    first = publish(random_pack(seed=0), REPO)
    with pytest.raises(HubError, match=r"v1\.0\.0 is already published.*bump the version"):
        publish(random_pack(seed=1), REPO)
    assert hub.head(REPO) == first.commit and hub.counts["commit"] == 1


def test_publishing_the_same_content_again_is_a_no_op(hub: HubServer) -> None:
    pack = random_pack()
    first = publish(pack, REPO)
    assert publish(pack, REPO) == first
    assert hub.counts["commit"] == 1 and hub.counts["tag"] == 1


def test_a_publish_that_failed_before_tagging_is_finished_by_running_it_again(
    hub: HubServer,
) -> None:
    pack = random_pack()
    hub.fail("tag", status=500, times=10)
    with pytest.raises(HubError, match=r"tagging l2v-test/tiny-pack@v1\.0\.0 .* failed: HTTP 500"):
        publish(pack, REPO)
    assert HfApi().list_repo_refs(REPO).tags == []  # not visible as a version
    hub.clear_faults()
    release = publish(pack, REPO)
    assert hub.counts["commit"] == 1  # no second commit
    assert release.commit == hub.head(REPO) and pull(REPO).pack == pack


def test_a_new_version_leaves_exactly_its_files_in_the_repo(hub: HubServer) -> None:
    publish(random_pack(), REPO)
    bare = random_pack(version="1.1.0")
    bare.stats = None
    publish(bare, REPO)
    api = HfApi()
    assert "stats.json" not in api.list_repo_files(REPO, revision="v1.1.0")
    assert "stats.json" in api.list_repo_files(REPO, revision="v1.0.0")


def test_only_the_files_the_pack_names_are_uploaded(hub: HubServer, tmp_path: Path) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    (folder / "secrets.txt").write_text("not for the Hub")
    publish(folder, REPO)
    assert sorted(HfApi().list_repo_files(REPO)) == PACK_FILES


def test_private_repo_and_version_override(hub: HubServer) -> None:
    release = publish(random_pack(), REPO, version="2.0.0", private=True)
    assert release.version == "2.0.0" and HfApi().model_info(REPO).private
    assert pull(REPO).pack.version == "2.0.0"


def test_an_invalid_pack_or_repo_id_is_refused_before_any_request(
    hub: HubServer, tmp_path: Path
) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    (folder / "directions.safetensors").write_bytes(b"garbage")
    with pytest.raises(PackError, match=r"directions\.safetensors"):
        publish(folder, REPO)
    with pytest.raises(ArgumentError, match="must be 'org/name'"):
        publish(random_pack(), "no-namespace")
    assert sum(hub.counts.values()) == 0


def test_suggested_repo_name_is_slugged_from_both_models() -> None:
    pack = random_pack(target_id="Qwen/Qwen2-VL-2B-Instruct")
    assert suggest_repo_name(pack) == "l2v-cot-llm-to-qwen2-vl-2b-instruct"


def test_create_pr_opens_a_pull_request_and_the_version_is_tagged_after_the_merge(
    hub: HubServer, tmp_path: Path
) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    HfApi().create_repo(REPO)
    main_before = hub.head(REPO)
    proposal = publish(folder, REPO, create_pr=True)
    api = HfApi()
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert [pr.target_commit for pr in refs.pull_requests] == [proposal.commit]
    assert refs.tags == [] and hub.head(REPO) == main_before  # nothing published yet
    # A maintainer merges it (here: the same files committed to main), then publish runs again.
    api.upload_folder(folder_path=folder, repo_id=REPO, commit_message="Merge the pack")
    merged = hub.head(REPO)
    release = publish(folder, REPO)
    assert release.commit == merged and hub.head(REPO) == merged
    assert pull(REPO, "v1.0.0").release == release


def test_a_commit_whose_answer_was_lost_is_tagged_by_running_again_without_a_second_commit(
    hub: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = random_pack()
    # no retries: a retry would itself see the commit landed (tests/test_reliability_faults.py)
    monkeypatch.setattr(retry, "POLICY", replace(retry.POLICY, attempts=1))
    hub.drop("commit", times=1)  # the Hub makes the commit, the client never hears of it
    with pytest.raises(HubError, match="committing to l2v-test/tiny-pack"):
        publish(pack, REPO)
    release = publish(pack, REPO)
    titles = [c.title for c in HfApi().list_repo_commits(REPO)]
    assert titles == ["Publish v1.0.0", "initial commit"]
    assert pull(REPO).release == release
