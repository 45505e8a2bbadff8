"""The test Hub (tests/hubserver.py) driven by the real huggingface_hub client over HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from hub_fixtures import go_offline
from hubserver import TEST_TOKEN, TEST_USER, HubServer
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    get_session,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "l2v-test/pack"
CARD = (
    "---\nlibrary_name: l2v-hub\nbase_model: tiny/vlm\nbase_model_relation: adapter\n"
    "tags:\n- l2v-cot\n- steering\n---\n# A pack\n"
)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_pack(
    folder: Path, *, version: str = "1.0.0", weights: bytes | None = None
) -> dict[str, bytes]:
    """A pack-like folder: a card, a JSON file, a binary LFS file and a file in a subfolder."""
    files = {
        "README.md": CARD.encode(),
        "pack.json": json.dumps({"version": version}).encode(),
        "directions.safetensors": weights if weights is not None else os.urandom(3000),
        "extra/notes.txt": f"notes for {version}\n".encode(),
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return files


@pytest.fixture
def api(hub: HubServer) -> HfApi:
    return HfApi(endpoint=hub.url)


@pytest.fixture
def published(api: HfApi, tmp_path: Path) -> dict:
    """REPO with one commit of `write_pack` on main, tagged v1.0.0."""
    folder = tmp_path / "v1"
    files = write_pack(folder)
    api.create_repo(REPO)
    info = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="Publish v1.0.0")
    api.create_tag(REPO, tag="v1.0.0")
    return {"files": files, "sha": info.oid, "folder": folder}


# --- repos, commits, refs --------------------------------------------------------------------------


def test_create_repo_conflicts_and_exist_ok(api: HfApi, hub: HubServer) -> None:
    url = api.create_repo(REPO)
    assert url == f"{hub.url}/{REPO}"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True) == url
    dataset = api.create_repo("l2v-test/index", repo_type="dataset")
    assert dataset == f"{hub.url}/datasets/l2v-test/index"
    # a new repo holds the Hub's initial commit with its .gitattributes
    commits = api.list_repo_commits(REPO)
    assert [c.title for c in commits] == ["initial commit"]
    assert [s.rfilename for s in api.model_info(REPO).siblings] == [".gitattributes"]


def test_upload_folder_is_one_commit_with_lfs_and_regular_files(
    api: HfApi, published: dict
) -> None:
    commits = api.list_repo_commits(REPO)
    assert [c.title for c in commits] == ["Publish v1.0.0", "initial commit"]
    assert commits[0].commit_id == published["sha"] and len(published["sha"]) == 40
    info = api.model_info(REPO, files_metadata=True)
    by_name = {s.rfilename: s for s in info.siblings}
    assert set(by_name) == {".gitattributes", *published["files"]}
    weights = published["files"]["directions.safetensors"]
    assert by_name["directions.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert by_name["directions.safetensors"].lfs.size == len(weights)
    assert by_name["pack.json"].lfs is None
    assert by_name["pack.json"].blob_id == git_blob_sha1(published["files"]["pack.json"])


def test_large_text_file_goes_to_lfs(api: HfApi, hub: HubServer, tmp_path: Path) -> None:
    api.create_repo(REPO)
    big = b"x" * (10 * 1024 * 1024)  # the Hub's 10 MiB limit for regular files
    api.upload_file(path_or_fileobj=big, path_in_repo="big.txt", repo_id=REPO)
    (entry,) = [e for e in api.list_repo_tree(REPO) if e.path == "big.txt"]
    assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(big).hexdigest()
    # the Hub tracks an LFS file that .gitattributes did not cover, in the same commit
    attributes = Path(hf_hub_download(REPO, ".gitattributes")).read_text()
    assert "big.txt filter=lfs diff=lfs merge=lfs -text" in attributes.splitlines()
    assert hub.counts["upload"] == 3  # batch, PUT to the storage origin, verify


def test_lfs_objects_are_verified_and_required_by_commits(api: HfApi, hub: HubServer) -> None:
    api.create_repo(REPO)
    session, auth = get_session(), {"Authorization": f"Bearer {TEST_TOKEN}"}
    data = b"weights" * 100
    oid = hashlib.sha256(data).hexdigest()
    batch = session.post(
        f"{hub.url}/{REPO}.git/info/lfs/objects/batch",
        headers=auth,
        json={
            "operation": "upload",
            "transfers": ["basic"],
            "objects": [{"oid": oid, "size": len(data)}],
        },
    ).json()
    assert batch["transfer"] == "basic"  # never xet
    actions = batch["objects"][0]["actions"]
    session.put(actions["upload"]["href"], content=b"not the weights").raise_for_status()
    bad = session.post(
        actions["verify"]["href"], headers=auth, json={"oid": oid, "size": len(data)}
    )
    assert bad.status_code == 422
    commit = json.dumps({"key": "header", "value": {"summary": "s"}}) + "\n"
    commit += json.dumps(
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid}}
    )
    refused = session.post(f"{hub.url}/api/models/{REPO}/commit/main", headers=auth, content=commit)
    assert refused.status_code == 400 and "w.bin" in refused.json()["error"]


def test_model_info_card_data_and_derived_tags(api: HfApi, published: dict) -> None:
    info = api.model_info(REPO)
    assert info.sha == published["sha"]
    assert info.library_name == "l2v-hub"
    assert info.card_data["base_model"] == "tiny/vlm"
    assert {"l2v-cot", "steering", "l2v-hub", "base_model:adapter:tiny/vlm"} <= set(info.tags)
    assert info.last_modified is not None and info.created_at is not None
    assert info.siblings[0].lfs is None  # no blob details unless files_metadata=True


def test_tags_refs_and_immutable_old_commits(api: HfApi, published: dict, tmp_path: Path) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api.create_tag(REPO, tag="v1.0.0")
    assert err.value.response.status_code == 409
    api.create_tag(REPO, tag="v1.0.0", exist_ok=True)
    files_v2 = write_pack(tmp_path / "v2", version="2.0.0")
    v2 = api.upload_folder(
        repo_id=REPO, folder_path=tmp_path / "v2", commit_message="Publish v2.0.0"
    )
    api.create_tag(REPO, tag="v2.0.0", revision=v2.oid)
    refs = api.list_repo_refs(REPO)
    assert {t.name: t.target_commit for t in refs.tags} == {
        "v1.0.0": published["sha"],
        "v2.0.0": v2.oid,
    }
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", v2.oid)]
    assert api.list_repo_commits(REPO)[1].commit_id == published["sha"]  # v2's parent
    for revision, files in (
        ("v1.0.0", published["files"]),
        (published["sha"], published["files"]),
        ("main", files_v2),
    ):
        path = hf_hub_download(REPO, "pack.json", revision=revision)
        assert Path(path).read_bytes() == files["pack.json"]
    assert api.model_info(REPO, revision="v1.0.0").sha == published["sha"]


def test_parent_commit_pull_requests_and_deletes(api: HfApi, published: dict) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(
            REPO,
            [CommitOperationAdd("a.txt", b"a")],
            commit_message="stale",
            parent_commit="0" * 40,
        )
    assert err.value.response.status_code == 412
    pr = api.create_commit(
        REPO, [CommitOperationAdd("a.txt", b"a")], commit_message="pr", create_pr=True
    )
    assert pr.pr_num == 1 and api.model_info(REPO).sha == published["sha"]
    assert (
        api.list_repo_refs(REPO, include_pull_requests=True).pull_requests[0].target_commit
        == pr.oid
    )
    assert Path(hf_hub_download(REPO, "a.txt", revision="refs/pr/1")).read_bytes() == b"a"
    api.create_commit(REPO, [CommitOperationDelete("extra/")], commit_message="drop folder")
    assert "extra/notes.txt" not in api.list_repo_files(REPO)
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.txt", repo_id=REPO)


def test_tree_listing_paths_and_pagination(api: HfApi, hub: HubServer, published: dict) -> None:
    top = {e.path for e in api.list_repo_tree(REPO)}
    assert top == {".gitattributes", "README.md", "pack.json", "directions.safetensors", "extra"}
    deep = {e.path: e for e in api.list_repo_tree(REPO, recursive=True, expand=True)}
    assert deep["extra/notes.txt"].size == len(published["files"]["extra/notes.txt"])
    assert deep["extra/notes.txt"].last_commit.oid == published["sha"]
    assert deep[".gitattributes"].last_commit.title == "initial commit"
    assert [e.path for e in api.list_repo_tree(REPO, path_in_repo="extra")] == ["extra/notes.txt"]
    hub.page_size = 2
    assert {e.path for e in api.list_repo_tree(REPO, recursive=True)} == set(deep)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, path_in_repo="nope"))
    assert [p.path for p in api.get_paths_info(REPO, ["pack.json", "nope", "extra"])] == [
        "pack.json",
        "extra",
    ]


def test_branches_exists_helpers_and_delete(api: HfApi, published: dict) -> None:
    api.create_branch(REPO, branch="dev", revision="v1.0.0")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_branch(REPO, branch="dev")
    assert err.value.response.status_code == 409
    dev = api.upload_file(
        path_or_fileobj=b"dev", path_in_repo="dev.txt", repo_id=REPO, revision="dev"
    )
    assert api.model_info(REPO, revision="dev").sha == dev.oid != api.model_info(REPO).sha
    assert api.file_exists(REPO, "dev.txt", revision="dev") and not api.file_exists(REPO, "dev.txt")
    assert api.revision_exists(REPO, "v1.0.0") and not api.revision_exists(REPO, "v9")
    api.delete_tag(REPO, tag="v1.0.0")
    api.delete_branch(REPO, branch="dev")
    assert [r.name for r in api.list_repo_refs(REPO).branches] == ["main"]
    assert api.list_repo_refs(REPO).tags == []
    api.delete_repo(REPO)
    assert not api.repo_exists(REPO)


def test_dataset_repos(api: HfApi, hub: HubServer) -> None:
    index = "l2v-test/index"
    api.create_repo(index, repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b'{"packs": []}',
        path_in_repo="index.json",
        repo_id=index,
        repo_type="dataset",
    )
    info = api.dataset_info(index)
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "index.json"}
    path = hf_hub_download(index, "index.json", repo_type="dataset")
    assert Path(path).read_bytes() == b'{"packs": []}'
    assert [d.id for d in api.list_datasets(author="l2v-test")] == [index]
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(index)  # a dataset is not a model


# --- downloads -------------------------------------------------------------------------------------


def test_resolve_headers_for_regular_and_lfs_files(hub: HubServer, published: dict) -> None:
    session = get_session()
    regular = session.head(f"{hub.url}/{REPO}/resolve/v1.0.0/pack.json")
    assert regular.status_code == 200
    assert regular.headers["ETag"] == f'"{git_blob_sha1(published["files"]["pack.json"])}"'
    assert regular.headers["X-Repo-Commit"] == published["sha"]
    assert int(regular.headers["Content-Length"]) == len(published["files"]["pack.json"])
    weights = published["files"]["directions.safetensors"]
    lfs = session.head(
        f"{hub.url}/{REPO}/resolve/{published['sha']}/directions.safetensors",
        follow_redirects=False,
    )
    assert lfs.status_code == 302 and lfs.headers["Location"].startswith(hub.cdn_url)
    assert lfs.headers["X-Linked-Etag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert int(lfs.headers["X-Linked-Size"]) == len(weights)


def test_range_requests(hub: HubServer, published: dict) -> None:
    session = get_session()
    data = published["files"]["pack.json"]
    part = session.get(f"{hub.url}/{REPO}/resolve/main/pack.json", headers={"Range": "bytes=2-5"})
    assert part.status_code == 206 and part.content == data[2:6]
    assert part.headers["Content-Range"] == f"bytes 2-5/{len(data)}"
    weights = published["files"]["directions.safetensors"]
    tail = session.get(
        f"{hub.url}/{REPO}/resolve/main/directions.safetensors", headers={"Range": "bytes=-10"}
    )
    assert tail.status_code == 206 and tail.content == weights[-10:]  # followed the redirect
    bad = session.get(f"{hub.url}/{REPO}/resolve/main/pack.json", headers={"Range": "bytes=9999-"})
    assert bad.status_code == 416


def test_download_cache_reuse_and_offline(hub: HubServer, published: dict, monkeypatch) -> None:
    first = hf_hub_download(REPO, "directions.safetensors", revision="v1.0.0")
    assert Path(first).read_bytes() == published["files"]["directions.safetensors"]
    assert hub.counts["download"] == 1
    assert hf_hub_download(REPO, "directions.safetensors", revision="v1.0.0") == first
    assert hub.counts["download"] == 1  # HEAD only: the cached blob is reused
    snapshot = snapshot_download(REPO, revision="v1.0.0")
    assert sorted(p.name for p in Path(snapshot).rglob("*") if p.is_file()) == sorted(
        [".gitattributes", "README.md", "directions.safetensors", "notes.txt", "pack.json"]
    )
    hub.stop()
    go_offline(monkeypatch)
    assert hf_hub_download(REPO, "directions.safetensors", revision="v1.0.0") == first
    assert snapshot_download(REPO, revision="v1.0.0") == snapshot
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "pack.json", revision="v9.9.9")


def test_typed_not_found_errors(api: HfApi, published: dict) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("l2v-test/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("l2v-test/missing", "pack.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "pack.json", revision="v9.9.9")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="f" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json", revision="v1.0.0")


def test_auth_private_repos_and_bad_tokens(api: HfApi, hub: HubServer, tmp_path: Path) -> None:
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO, token=False)
    assert err.value.response.status_code == 401
    api.create_repo("l2v-test/secret", private=True)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="pack.json", repo_id="l2v-test/secret")
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_file(
            path_or_fileobj=b"{}", path_in_repo="x.json", repo_id="l2v-test/secret", token=False
        )
    assert err.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("l2v-test/secret", token=False)
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info("l2v-test/secret", token="hf_wrong")
    assert err.value.response.status_code == 401
    assert api.model_info("l2v-test/secret").private is True
    assert [m.id for m in api.list_models(author="l2v-test", token=False)] == []


def test_list_models_filters(api: HfApi, published: dict) -> None:
    api.create_repo("l2v-test/other")
    api.upload_file(
        path_or_fileobj=b"---\nlibrary_name: peft\n---\n",
        path_in_repo="README.md",
        repo_id="l2v-test/other",
    )
    ids = lambda **kw: [m.id for m in api.list_models(**kw)]  # noqa: E731
    assert ids(filter=["l2v-hub", "base_model:adapter:tiny/vlm"]) == [REPO]
    assert ids(filter="peft") == ["l2v-test/other"]
    assert ids(author="nobody") == []
    assert ids(search="PACK") == [REPO]
    assert ids(sort="last_modified", limit=1) == ["l2v-test/other"]
    assert sorted(ids(author="l2v-test")) == ["l2v-test/other", REPO]
    (full,) = api.list_models(filter="l2v-hub", full=True, cardData=True)
    assert full.sha == published["sha"] and full.card_data["base_model"] == "tiny/vlm"
    (brief,) = api.list_models(filter="l2v-hub")
    assert brief.sha is None and brief.library_name == "l2v-hub"


def test_subprocess_reaches_the_hub_through_environment(hub: HubServer, published: dict) -> None:
    code = f"from huggingface_hub import hf_hub_download as d; print(open(d('{REPO}', 'pack.json')).read())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == published["files"]["pack.json"].decode()


# --- faults, counters, tampering, restart ------------------------------------------------------------


def test_server_errors_on_publish_steps(api: HfApi, hub: HubServer, tmp_path: Path) -> None:
    hub.fail("create")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 500
    api.create_repo(REPO)
    before = api.model_info(REPO).sha
    files = write_pack(tmp_path / "v1")
    hub.fail("commit")
    with pytest.raises(HfHubHTTPError):
        api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1")
    assert api.model_info(REPO).sha == before  # nothing landed
    hub.reset_counts()
    hub.fail("preupload")  # retried with backoff by the client
    hub.fail("upload", status=429, retry_after=0)
    sha = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1").oid
    assert hub.counts["preupload"] == 2 and api.model_info(REPO).sha == sha
    # the LFS object stored before the failed commit is not uploaded again: batch only
    assert [s for k, m, _, s in hub.log if "upload" in k] == [429, 200]
    hub.fail("tag")
    with pytest.raises(HfHubHTTPError):
        api.create_tag(REPO, tag="v1.0.0")
    assert api.list_repo_refs(REPO).tags == []
    assert files


def test_commit_response_lost_after_it_landed(api: HfApi, hub: HubServer, tmp_path: Path) -> None:
    api.create_repo(REPO)
    write_pack(tmp_path / "v1")
    hub.drop("commit")
    with pytest.raises(httpx2.RemoteProtocolError):
        api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1")
    landed = api.model_info(REPO).sha
    assert api.list_repo_commits(REPO)[0].title == "v1"
    again = api.upload_folder(repo_id=REPO, folder_path=tmp_path / "v1", commit_message="v1")
    assert again.oid == landed and len(api.list_repo_commits(REPO)) == 2  # no duplicate commit


def test_download_faults_are_retried_or_resumed(hub: HubServer, published: dict) -> None:
    weights = published["files"]["directions.safetensors"]
    hub.drop("download")  # cut mid-body: the client tries again (with a Range if it kept bytes)
    path = hf_hub_download(REPO, "directions.safetensors", revision="v1.0.0")
    assert Path(path).read_bytes() == weights
    # 0: cut off; the client kept no partial bytes (they were still buffered) and starts over
    assert [s for k, m, p, s in hub.log if "download" in k] == [0, 200]
    hub.fail("download", status=429, retry_after=0)
    assert (
        Path(hf_hub_download(REPO, "pack.json", revision="v1.0.0")).read_bytes()
        == published["files"]["pack.json"]
    )
    assert [s for k, m, p, s in hub.log if "download" in k][-2:] == [429, 200]
    hub.fail("download", status=500)  # the client does not retry a 500 on the file GET
    with pytest.raises(HfHubHTTPError) as err:
        hf_hub_download(REPO, "README.md", revision="v1.0.0")
    assert err.value.response.status_code == 500


def test_cut_head_request_is_not_caught_by_the_client(hub: HubServer, published: dict) -> None:
    path = hf_hub_download(REPO, "pack.json", revision="v1.0.0")
    hub.drop("resolve")  # a HEAD gets no response at all
    # huggingface_hub falls back to its cache on connect errors and timeouts, not on a cut
    # connection: the caller has to handle RemoteProtocolError itself
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO, "pack.json", revision="v1.0.0")
    assert hf_hub_download(REPO, "pack.json", revision="v1.0.0") == path


def test_resolve_faults_fall_back_to_cache_or_retry(hub: HubServer, published: dict) -> None:
    hub.fail("resolve", status=500)  # nothing cached: the client retries the HEAD
    path = hf_hub_download(REPO, "pack.json", revision="v1.0.0")
    downloads = hub.counts["download"]
    hub.fail("resolve", status=500, times=1)  # cached: served from the cache, no retry, no download
    assert hf_hub_download(REPO, "pack.json", revision="v1.0.0") == path
    assert hub.counts["download"] == downloads
    hub.reset_counts()
    hub.slow("resolve", 2.0)  # past etag_timeout: the client retries the HEAD with a longer timeout
    path = hf_hub_download(REPO, "README.md", revision="v1.0.0", etag_timeout=0.3)
    assert Path(path).read_bytes() == published["files"]["README.md"]
    assert hub.counts["resolve"] == 3 and hub.counts["download"] == 1  # HEAD, HEAD, GET


def test_info_and_list_faults(api: HfApi, hub: HubServer, published: dict) -> None:
    hub.fail("info", status=503)
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info(REPO)
    assert err.value.response.status_code == 503
    hub.slow("info", 1.0)
    with pytest.raises(httpx2.TimeoutException):
        api.model_info(REPO, timeout=0.2)
    hub.drop("info", before=True)
    with pytest.raises(httpx2.RemoteProtocolError):
        api.model_info(REPO)
    hub.fail("list", status=429, retry_after=0)  # list_models retries after Retry-After
    assert [m.id for m in api.list_models(filter="l2v-hub")] == [REPO]
    with pytest.raises(ValueError, match="unknown request kind"):
        hub.fail("bogus")


def test_tamper_changes_bytes_but_not_hashes(api: HfApi, hub: HubServer, published: dict) -> None:
    weights = published["files"]["directions.safetensors"]
    hub.tamper(REPO, "directions.safetensors", revision="v1.0.0")
    hub.tamper(REPO, "pack.json", data=b'{"version": "6.6.6"}')
    info = api.model_info(REPO, files_metadata=True)
    lfs = {s.rfilename: s.lfs for s in info.siblings}["directions.safetensors"]
    got = Path(hf_hub_download(REPO, "directions.safetensors")).read_bytes()
    assert len(got) == len(weights) and got != weights
    assert lfs.sha256 == hashlib.sha256(weights).hexdigest() != hashlib.sha256(got).hexdigest()
    assert Path(hf_hub_download(REPO, "pack.json")).read_bytes() == b'{"version": "6.6.6"}'


def test_stop_and_restart_on_the_same_port(api: HfApi, hub: HubServer, published: dict) -> None:
    url = hub.url
    cached = hf_hub_download(REPO, "pack.json", revision="v1.0.0")
    hub.stop()
    with pytest.raises(httpx2.ConnectError):
        api.model_info(REPO)
    # unreachable Hub, online mode: the client falls back to its cache of that revision
    assert hf_hub_download(REPO, "pack.json", revision="v1.0.0") == cached
    hub.start()
    assert hub.url == url and api.model_info(REPO).sha == published["sha"]


def test_token_fixture_and_counters(hub: HubServer) -> None:
    assert os.environ["HF_TOKEN"] == TEST_TOKEN and os.environ["HF_ENDPOINT"] == hub.url
    assert HfApi().whoami()["name"] == TEST_USER
    HfApi().create_repo(REPO)  # no endpoint given: the patched constants point at the test Hub
    assert hub.counts["create"] == 1
    hub.reset_counts()
    assert hub.counts["create"] == 0 and hub.log == []
