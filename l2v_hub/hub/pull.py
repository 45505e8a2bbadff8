"""Pull a pack by repo id and revision, from the Hub or a local store, and verify every byte.

``revision=None`` means the highest semantic-version tag ``v*`` (never ``main``, which may hold
work in progress); ``"v1.2.0"`` (or ``"1.2.0"``) a tag; a 40-hex string a commit. ``pack.json`` is
fetched first and only the files it names follow. Each file is checked against the sha256 in
``pack.json`` and, where the Hub records one, against the Hub's LFS sha256.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from ..errors import ArgumentError, HubError, PackError, PackNotFoundError
from ..files import load_json, safe_path
from ..metadata import _SEMVER, check_model_id, parse_metadata
from ..pack import METADATA_FILE, Pack
from .source import (
    PackSource,
    PulledPack,
    Release,
    highest_version,
    is_commit,
    open_source,
    version_key,
)
from .tags import check_tag, remember_tag

if TYPE_CHECKING:
    from ..pack import PathLike

__all__ = ["check_revision", "parse_ref", "pull", "select_release"]

log = logging.getLogger(__name__)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"org/name@v1.2.0"`` -> ``("org/name", "v1.2.0")``; no ``@`` -> revision None."""
    repo_id, _, revision = ref.partition("@")
    if "/" not in repo_id:
        raise ArgumentError(f"'{ref}' is not a pack reference: expected org/name[@revision]")
    check_model_id(repo_id, "repo id")
    if revision:
        check_revision(revision, repo_id)
    return repo_id, revision or None


def check_revision(revision: str, repo_id: str) -> None:
    """Refuse a revision that is neither a version (``v1.2.0`` or ``1.2.0``) nor a commit sha."""
    if not is_commit(revision.lower()) and not _SEMVER.match(revision.removeprefix("v")):
        raise ArgumentError(
            f"revision '{revision}' of '{repo_id}' is neither a version tag like 'v1.2.0' nor a "
            "40-hex commit sha (branches move, so packs are not pulled by branch)"
        )


def select_release(source: PackSource, repo_id: str, revision: str | None) -> Release:
    """The release ``revision`` names; a commit stays unversioned until its pack.json is read."""
    if revision is not None and is_commit(revision.lower()):
        return Release(repo_id, None, revision.lower())
    if revision is not None:
        check_revision(revision, repo_id)
    version = None if revision is None else revision.removeprefix("v")
    try:
        versions = source.versions(repo_id)
    except HubError as exc:  # name what was asked for, whatever failed underneath
        wanted = f"v{version}" if version else "the highest version"
        raise type(exc)(f"pulling {repo_id} {wanted}: {exc}") from None
    if version is None:
        version = highest_version(versions)
        if version is None:
            raise PackNotFoundError(
                f"'{repo_id}' on {source.where} has no published version (no v* tag)"
            )
    elif version not in versions:
        known = ", ".join(f"v{v}" for v in sorted(versions, key=version_key)) or "none"
        raise PackNotFoundError(
            f"'{repo_id}' has no version v{version} on {source.where} (versions: {known})"
        )
    return Release(repo_id, version, versions[version])


def _named_files(pack_json: bytes, where: str) -> dict[str, str]:
    """The files ``pack.json`` names, with their sha256, after the strict metadata check."""
    try:
        meta = parse_metadata(load_json(pack_json, METADATA_FILE))
    except PackError as exc:
        raise PackError(f"{exc} [{where}]") from None
    return {name: entry["sha256"] for name, entry in meta["files"].items()}


def pull(
    repo_id: str,
    revision: str | None = None,
    *,
    store: PathLike | PackSource | None = None,
    token: str | None = None,
    accept_moved_tag: bool = False,
) -> PulledPack:
    """Download (or find in the cache), verify and load one release of a pack repo.

    Raises ``PackNotFoundError`` naming the repo and revision when it does not exist or is not
    cached while offline, ``PackError`` naming the file when a byte differs from what
    ``pack.json`` (or the Hub) records, or when a version tag now points to another commit than
    when it was first pulled here (``accept_moved_tag=True`` accepts the new one, see
    ``tags.py``), ``HubError`` when the source fails, ``ArgumentError`` for a malformed revision.
    """
    check_model_id(repo_id, "repo id")
    source = open_source(store, token)
    release = select_release(source, repo_id, revision)
    if release.version is not None:  # before any download: the cache's refs stay as they were
        check_tag(source.where, release, accept_moved=accept_moved_tag)
    pack_json, commit = source.read_metadata(
        repo_id, release.tag if release.version else release.commit
    )
    if commit != release.commit:
        raise HubError(
            f"{release.repo_id} {release.tag} moved to commit {commit} while being pulled"
        )
    where = f"{repo_id}@{commit[:12]} on {source.where}"
    files = _named_files(pack_json, where)
    folder, _ = source.download(repo_id, commit, {})
    for name in files:  # refuse names that climb out of the folder before fetching anything
        safe_path(folder, name)
    try:
        folder, origin = source.download(repo_id, commit, files)
    except PackError as exc:
        raise PackError(f"{exc} [{where}]") from None
    if (folder / METADATA_FILE).read_bytes() != pack_json:
        raise PackError(f"{METADATA_FILE} of {where} changed while being pulled")
    try:
        pack = Pack.from_pretrained(folder)
    except PackError as exc:
        raise PackError(f"{exc} [{where}]") from None
    if release.version is not None and pack.version != release.version:
        raise PackError(
            f"{METADATA_FILE} of {where} says version {pack.version}, but it is tagged {release.tag}"
        )
    if release.version is not None:
        remember_tag(source.where, release)
    log.info("pulled %s from %s", release, origin)
    return PulledPack(
        pack=pack,
        folder=folder,
        release=Release(repo_id, pack.version, commit),
        pack_sha256=hashlib.sha256(pack_json).hexdigest(),
        where=origin,
    )
