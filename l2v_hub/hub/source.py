"""Where packs live: the ``PackSource`` interface that the Hub and the local store both implement,
the release a revision names, and the semantic-version order that picks the default release.

Publishing and pulling (``publish.py``, ``pull.py``) are written once against this interface, so
the Hub and a local store go through the same checks.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..metadata import _SEMVER  # the one definition of a valid pack version

if TYPE_CHECKING:
    from ..pack import Pack, PathLike

__all__ = [
    "STORE_ENV",
    "PackSource",
    "PulledPack",
    "Release",
    "Upload",
    "highest_version",
    "is_commit",
    "open_source",
    "version_key",
]

STORE_ENV = "L2V_HUB_STORE"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def is_commit(revision: str) -> bool:
    """True for a full 40-hex commit sha (the only revision that pins content for good)."""
    return bool(_COMMIT.match(revision))


def version_key(version: str) -> tuple:
    """Sort key of a semantic version: releases above their pre-releases, build metadata ignored."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"not a semantic version: {version!r}")
    core, _, pre = version.split("+", 1)[0].partition("-")
    ids = (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    )
    return (*map(int, core.split(".")), not pre, ids)


def highest_version(versions: Iterable[str]) -> str | None:
    """The default release: the highest version, pre-releases only when nothing else exists."""
    versions = list(versions)
    releases = [v for v in versions if "-" not in v.split("+", 1)[0]]
    return max(releases or versions, key=version_key, default=None)


@dataclass(frozen=True)
class Release:
    """One published version of a pack repo, pinned to the commit that holds it."""

    repo_id: str
    version: str | None  # None until pack.json is read, when pinned by commit
    commit: str
    pr_url: str | None = None  # set when publishing opened a pull request: nothing is tagged yet

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    @property
    def released(self) -> bool:
        """False for a pull request: ``commit`` is on the PR ref, and no version tag exists."""
        return self.pr_url is None

    def __str__(self) -> str:
        name = f"{self.repo_id}@v{self.version}" if self.version else self.repo_id
        return f"{name} (commit {self.commit[:12]})"


@dataclass(frozen=True)
class Upload:
    """One version to publish: the verified files ``names`` of ``folder``."""

    folder: Path
    names: tuple[str, ...]
    repo_id: str
    version: str
    private: bool = False
    create_pr: bool = False


@dataclass(frozen=True)
class PulledPack:
    """A verified pack and where it came from."""

    pack: Pack
    folder: Path
    release: Release
    pack_sha256: str  # sha256 of pack.json, which pins every other file: what registries record
    where: str  # where the bytes came from: the Hub, the local cache (and why), or the store


class PackSource(ABC):
    """A place packs are published to and pulled from (the Hub, or a folder on disk)."""

    @property
    @abstractmethod
    def where(self) -> str:
        """For messages: 'the Hub at https://...' or 'the store at /path'."""

    @abstractmethod
    def versions(self, repo_id: str) -> dict[str, str]:
        """Published versions of ``repo_id`` and their commits; ``PackNotFoundError`` if no repo."""

    @abstractmethod
    def read_metadata(self, repo_id: str, revision: str) -> tuple[bytes, str]:
        """``pack.json``'s bytes at ``revision`` (a tag or a commit) and the commit they are at."""

    @abstractmethod
    def download(self, repo_id: str, commit: str, files: dict[str, str]) -> tuple[Path, str]:
        """A local folder holding ``pack.json`` and the ``files`` (name -> sha256 that pack.json
        records) as they are at ``commit``, and where their bytes came from, for messages (the
        Hub, its cache, the store). A source that records its own hashes checks them too."""

    @abstractmethod
    def upload(self, job: Upload) -> Release:
        """Publish ``job`` (a version whose tag is free), fully or not at all."""

    @abstractmethod
    def discover(self, model_id: str) -> list[str]:
        """Repo ids of packs that say they steer ``model_id`` (uncurated)."""


def open_source(store: PathLike | PackSource | None = None, token: str | None = None) -> PackSource:
    """The source to use: ``store`` (or ``$L2V_HUB_STORE``) when given, else the Hub."""
    if isinstance(store, PackSource):
        return store
    store = store or os.environ.get(STORE_ENV) or None
    if store:
        from .store import Store

        return Store(store)
    from .hubsource import HubSource

    return HubSource(token=token)
