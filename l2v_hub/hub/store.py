"""A local pack store: the Hub's job done by a folder, for demos and air-gapped sites.

Layout: ``{root}/{org}/{name}/{version}/`` holding ``pack.json`` and the files it names. A version
folder appears in one ``rename`` (or not at all) and is never rewritten. A store has no git, so the
"commit" of a version is the sha1 of its ``pack.json`` (which pins every other file by sha256):
like a Hub commit it is 40 hex digits and names exactly one content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path

from ..errors import ArgumentError, HubError, PackNotFoundError
from ..metadata import _SEMVER
from ..pack import METADATA_FILE, PathLike
from .source import PackSource, Release, Upload, is_commit

__all__ = ["Store"]

log = logging.getLogger(__name__)


def _commit_of(pack_json: bytes) -> str:
    return hashlib.sha1(pack_json).hexdigest()


class Store(PackSource):
    """Packs in a folder, laid out by repo id and version."""

    def __init__(self, root: PathLike) -> None:
        # Absolute: two stores at the same relative path (two checkouts) are two sources.
        self.root = Path(root).expanduser().absolute()

    @property
    def where(self) -> str:
        return f"the store at {self.root}"

    def _repo(self, repo_id: str) -> Path:
        org, sep, name = repo_id.partition("/")
        if not sep:
            raise ArgumentError(f"a store keeps packs as 'org/name'; got '{repo_id}'")
        return self.root / org / name

    def versions(self, repo_id: str) -> dict[str, str]:
        repo = self._repo(repo_id)
        if not repo.is_dir():
            raise PackNotFoundError(f"no pack repo '{repo_id}' in {self.where}")
        return {
            d.name: _commit_of((d / METADATA_FILE).read_bytes())
            for d in repo.iterdir()
            if _SEMVER.match(d.name) and (d / METADATA_FILE).is_file()
        }

    def _version_dir(self, repo_id: str, revision: str) -> Path:
        versions = self.versions(repo_id)
        if is_commit(revision):
            match = [v for v, c in versions.items() if c == revision]
        else:
            match = [revision[1:]] if revision[1:] in versions else []
        if not match:
            raise PackNotFoundError(f"'{repo_id}' has no revision '{revision}' in {self.where}")
        return self._repo(repo_id) / match[0]

    def read_metadata(self, repo_id: str, revision: str) -> tuple[bytes, str]:
        data = (self._version_dir(repo_id, revision) / METADATA_FILE).read_bytes()
        return data, _commit_of(data)

    def download(self, repo_id: str, commit: str, files: dict[str, str]) -> tuple[Path, str]:
        return self._version_dir(repo_id, commit), self.where

    def upload(self, job: Upload) -> Release:
        repo_id, version = job.repo_id, job.version
        if job.create_pr:
            raise ArgumentError(f"{self.where} has no pull requests; publish without create_pr")
        repo = self._repo(repo_id)
        repo.mkdir(parents=True, exist_ok=True)
        # mkdir, not mkdtemp (0700): the umask decides, so other users can read a shared store.
        staging = repo / f".{version}.{secrets.token_hex(6)}.tmp"
        staging.mkdir()
        try:
            for name in job.names:
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(job.folder / name, staging / name)
            # A rename onto an existing non-empty folder fails: two publishers cannot both win.
            os.rename(staging, repo / version)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if (repo / version).is_dir():
                raise HubError(
                    f"{repo_id} v{version} was published to {self.where} at the same time; "
                    "publish again to compare"
                ) from None
            raise HubError(f"cannot write {repo_id} v{version} to {self.where}: {exc}") from None
        return Release(repo_id, version, _commit_of((repo / version / METADATA_FILE).read_bytes()))

    def discover(self, model_id: str) -> list[str]:
        found = set()
        for meta in self.root.glob(f"*/*/*/{METADATA_FILE}"):
            try:
                target = json.loads(meta.read_bytes())["target"]["model_id"]
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("%s: unreadable, skipped", meta)
                continue
            if str(target).casefold() == model_id.casefold() and _SEMVER.match(meta.parent.name):
                found.add(f"{meta.parent.parent.parent.name}/{meta.parent.parent.name}")
        return sorted(found)
