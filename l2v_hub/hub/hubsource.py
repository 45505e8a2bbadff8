"""The Hugging Face Hub as a pack source, through huggingface_hub's own client and cache.

``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and ``HF_ENDPOINT`` are honoured because every call
goes through huggingface_hub, which reads them. A version is a tag ``v{version}`` on a model repo;
pulls by tag record the tag in the cache (``refs/``), so the default version resolves offline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    constants,
    hf_hub_download,
    try_to_load_from_cache,
)

from .._version import __version__
from ..errors import HubError, PackError, PackNotFoundError
from ..pack import METADATA_FILE
from . import retry
from .hubcache import (
    blob_intact,
    cached_versions,
    file_sha256,
    hub_errors,
    is_version_tag,
    offline,
)
from .source import PackSource, Release, Upload

__all__ = ["LIBRARY_NAME", "HubSource"]

LIBRARY_NAME = "l2v-hub"
_T = TypeVar("_T")
log = logging.getLogger(__name__)


class HubSource(PackSource):
    """Packs as tagged model repos on the Hub (``HF_ENDPOINT``, default huggingface.co)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.api = HfApi(token=token, library_name=LIBRARY_NAME, library_version=__version__)
        self._fell_back: str | None = None  # why the cache stood in for the Hub, for messages
        self._refetched = False  # a damaged cached file was downloaded again
        retry.bound_requests()

    @property
    def where(self) -> str:
        return f"the Hub at {self.api.endpoint}"

    def _call(self, repo_id: str, revision: str | None, action: str, fn: Callable[..., _T], /,
              *args: Any, settle: Callable[[], _T | None] | None = None, **kw: Any) -> _T:
        """The one place every request passes: transient failures are retried (``retry.py``)."""
        with hub_errors(repo_id, revision, action, self.where):
            what = f"{action} {repo_id}@{revision}" if revision else f"{action} {repo_id}"
            return retry.call(what, fn, *args, settle=settle, **kw)

    def _file(self, repo_id: str, name: str, revision: str, *, force: bool = False) -> Path:
        """``name`` at ``revision``, downloaded, or from the cache when the Hub keeps failing
        (never with ``force``, which asks for fresh bytes)."""
        try:
            return Path(self._call(
                repo_id, revision, f"downloading {name} of", hf_hub_download, repo_id, name,
                revision=revision, token=self.token, endpoint=self.api.endpoint,
                etag_timeout=retry.POLICY.timeout,  # the HEAD; the GET has HF_HUB_DOWNLOAD_TIMEOUT
                force_download=force,
            ))
        except PackNotFoundError:
            raise
        except HubError as exc:  # the same revision, cached earlier, is the same bytes
            cached = try_to_load_from_cache(repo_id, name, revision=revision)
            if force or not isinstance(cached, str):
                raise HubError(f"{exc}; not in the local Hugging Face cache either") from None
            log.warning("%s; using the copy in the local Hugging Face cache", exc)
            self._fell_back = f"{self.where} failed"
            return Path(cached)

    def _verified(self, repo_id: str, name: str, revision: str, sha256: str | None) -> Path:
        """``name``, its bytes checked against ``sha256`` (pack.json's record) or, for pack.json,
        against the name of its cache blob. A damaged cached copy is fetched again, so a damaged
        cache is not reported as a bad file on the Hub; offline, the error names the file."""
        fresh = not isinstance(try_to_load_from_cache(repo_id, name, revision=revision), str)
        before = self._fell_back
        path = self._file(repo_id, name, revision)
        fresh = fresh and self._fell_back == before
        if sha256 is None and fresh:  # pack.json straight from the Hub: checked by its reader
            return path
        fault = _fault(path, sha256)
        if fault is None:
            return path
        if fresh:
            raise PackError(f"{name}: {fault}, in a fresh download from {self.where}: the file on "
                            "the Hub is wrong")
        local = path.resolve()
        damaged = f"{name}: the copy in the local Hugging Face cache ({local}) has {fault}"
        if offline():
            raise PackError(f"{damaged}: it is damaged; delete {local} and pull again with the "
                            "Hub reachable (HF_HUB_OFFLINE=1 is set)")
        log.warning("%s; downloading it again from %s", damaged, self.where)
        self._refetched = True
        try:
            path = self._file(repo_id, name, revision, force=True)
        except HubError as exc:
            raise PackError(f"{damaged}, and fetching it again failed ({exc}); delete {local} "
                            "and pull again") from None
        fault = _fault(path, sha256)
        if fault is not None:
            raise PackError(f"{name}: {fault}, also in a fresh download from {self.where}: the "
                            "file on the Hub is wrong")
        return path

    # -- reading ------------------------------------------------------------------------------

    def versions(self, repo_id: str) -> dict[str, str]:
        if offline():
            return cached_versions(repo_id, "HF_HUB_OFFLINE=1")
        try:
            refs = self._call(
                repo_id, None, "listing the versions of", self.api.list_repo_refs, repo_id
            )
        except PackNotFoundError:
            raise
        except HubError as exc:  # the Hub is unreachable: the versions pulled before still resolve
            log.warning("%s; using the versions in the local cache", exc)
            self._fell_back = f"{self.where} failed"
            return cached_versions(repo_id, str(exc))
        return {t.name[1:]: t.target_commit for t in refs.tags if is_version_tag(t.name)}

    def read_metadata(self, repo_id: str, revision: str) -> tuple[bytes, str]:
        path = self._verified(repo_id, METADATA_FILE, revision, None)
        return path.read_bytes(), path.parent.name  # the cache keeps files under snapshots/<commit>/

    def download(self, repo_id: str, commit: str, files: dict[str, str]) -> tuple[Path, str]:
        cached = all(
            isinstance(try_to_load_from_cache(repo_id, n, revision=commit), str) for n in files
        )
        for name, sha256 in files.items():  # only the files the pack names: never the rest
            self._verified(repo_id, name, commit, sha256)
        if files and not cached:  # fresh bytes: also hold them against the Hub's own LFS records
            try:
                digests = self._lfs_digests(repo_id, commit)
            except HubError as exc:  # pack.json's sha256 of every file is still checked
                log.warning("%s; skipping the check against the Hub's LFS records", exc)
                digests = {}
            for name, sha in digests.items():
                if name in files and files[name] != sha:
                    raise PackError(
                        f"{name}: the Hub records sha256 {sha}, pack.json says {files[name]}"
                    )
        return self._file(repo_id, METADATA_FILE, commit).parent, self._origin(cached)

    def _origin(self, cached: bool) -> str:
        """Where the bytes of this pull came from, truthfully (not always the Hub)."""
        cache = f"the local Hugging Face cache ({constants.HF_HUB_CACHE}"
        if offline():
            return f"{cache}; HF_HUB_OFFLINE=1)"
        if self._fell_back:
            return f"{cache}; {self._fell_back})"
        fresh = not cached or self._refetched
        return self.where if fresh else f"{cache}; release checked on {self.where})"

    def _lfs_digests(self, repo_id: str, commit: str) -> dict[str, str]:
        tree = self._call(
            repo_id,
            commit,
            "listing the files of",
            lambda: list(self.api.list_repo_tree(repo_id, revision=commit)),
        )
        return {f.path: f.lfs.sha256 for f in tree if getattr(f, "lfs", None) is not None}

    def discover(self, model_id: str) -> list[str]:
        if offline():
            raise HubError("Hub discovery is not possible with HF_HUB_OFFLINE=1")
        # The Hub derives the tag base_model:adapter:<id> from the card's base_model + relation.
        found = self._call(
            model_id,
            None,
            "searching packs for",
            lambda: list(
                self.api.list_models(
                    filter=[LIBRARY_NAME, f"base_model:adapter:{model_id}"],
                    limit=100,
                )
            ),
        )
        return sorted(m.id for m in found)

    # -- writing ------------------------------------------------------------------------------

    def upload(self, job: Upload) -> Release:
        repo_id, tag = job.repo_id, f"v{job.version}"
        self._call(
            repo_id,
            None,
            "creating",
            self.api.create_repo,
            repo_id,
            private=job.private,
            exist_ok=True,
        )
        tags, head = self._refs(repo_id)
        if tag in tags:  # tagged since the caller looked: compare again
            raise HubError(
                f"{repo_id} {tag} was published meanwhile on {self.where}; run the publish again"
            )
        ours = (job.folder / METADATA_FILE).read_bytes()
        if head and not job.create_pr and self._head_holds(repo_id, head, ours):
            # An earlier run committed these files but stopped before tagging: finish it.
            log.info("%s: main already holds this pack at %s; tagging it", repo_id, head[:12])
            commit = head
        else:
            commit, pr_url = self._commit(job, head)
            if pr_url:  # no tag: the version is released only when this publish runs again
                log.warning(
                    "opened %s; %s is tagged once it is merged and this publish is run again",
                    pr_url,
                    tag,
                )
                return Release(repo_id, job.version, commit, pr_url=pr_url)
        self._call(
            repo_id,
            tag,
            "tagging",
            self.api.create_tag,
            repo_id,
            tag=tag,
            revision=commit,
            tag_message=f"l2v-hub pack {tag}",
            settle=lambda: True if self._refs(repo_id)[0].get(tag) == commit else None,
        )
        return Release(repo_id, job.version, commit)

    def _refs(self, repo_id: str) -> tuple[dict[str, str], str | None]:
        """The repo's tags (name -> commit) and the head of ``main``."""
        refs = self._call(repo_id, None, "reading the refs of", self.api.list_repo_refs, repo_id)
        heads = {b.name: b.target_commit for b in refs.branches}
        return {t.name: t.target_commit for t in refs.tags}, heads.get("main")

    def _head_holds(self, repo_id: str, head: str, ours: bytes) -> bool:
        try:
            return self._file(repo_id, METADATA_FILE, head).read_bytes() == ours
        except PackError:  # no pack.json on main yet
            return False

    def _commit(self, job: Upload, head: str | None) -> tuple[str, str | None]:
        repo_id, stale = job.repo_id, []
        if head:  # the commit leaves exactly the pack's files in the repo
            present = self._call(
                repo_id, head, "listing", self.api.list_repo_files, repo_id, revision=head
            )
            stale = [p for p in present if p not in job.names and p != ".gitattributes"]
        ops = [CommitOperationAdd(n, str(job.folder / n)) for n in job.names]
        ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
        ours = (job.folder / METADATA_FILE).read_bytes()

        def landed() -> CommitInfo | None:  # a commit whose answer was lost must not be made twice
            now = self._refs(repo_id)[1]
            if now and now != head and self._head_holds(repo_id, now, ours):
                url = f"{self.api.endpoint}/{repo_id}/commit/{now}"
                return CommitInfo(commit_url=url, commit_message="", commit_description="", oid=now)
            return None

        info = self._call(
            repo_id,
            None,
            "committing to",
            self.api.create_commit,
            repo_id,
            ops,
            commit_message=f"Publish v{job.version}",
            commit_description=f"l2v-hub {__version__}: pack files of version {job.version}.",
            create_pr=job.create_pr,
            parent_commit=head,
            settle=None if job.create_pr else landed,
        )
        return info.oid, (info.pr_url if job.create_pr else None)


def _fault(path: Path, sha256: str | None) -> str | None:
    """What is wrong with the bytes at ``path``, or None."""
    if sha256 is None:
        blob = path.resolve().name
        return None if blob_intact(path) else f"bytes that do not hash to its blob name {blob}"
    actual = file_sha256(path)
    return None if actual == sha256 else f"sha256 {actual}, pack.json says {sha256}"
