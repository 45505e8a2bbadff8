"""Publish a pack as an immutable version: every file in one commit, then the tag ``v{version}``.

The tag is created only after the commit succeeded, so a version is visible fully or not at all.
Publishing is idempotent: the same content under an existing version is a no-op (and a run that
committed but failed before tagging is finished by running it again); different content under an
existing version is refused with a message to bump the version.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArgumentError, HubError, PackNotFoundError
from ..metadata import _SEMVER, check_model_id, default_pack_name
from ..pack import METADATA_FILE, Pack
from .source import PackSource, Release, Upload, highest_version, open_source, version_key

if TYPE_CHECKING:
    from ..pack import PathLike

__all__ = ["check_publish_args", "publish", "suggest_repo_name"]

log = logging.getLogger(__name__)


def suggest_repo_name(pack: Pack) -> str:
    """``l2v-cot-{source}-to-{target}`` from the two models' names (the builder's default name)."""
    return default_pack_name(pack.source.model_id, pack.target.model_id)


def check_publish_args(repo_id: str, version: str | None) -> None:
    """Refuse a malformed repo id or version before any work (``ArgumentError``)."""
    if not isinstance(repo_id, str) or "/" not in repo_id:
        raise ArgumentError(
            f"repo id '{repo_id}' must be 'org/name' (your user name or an organisation)"
        )
    try:
        check_model_id(repo_id, "repo id")
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    if version is not None and not _SEMVER.match(version.removeprefix("v")):
        raise ArgumentError(f"version '{version}' is not a semantic version like 1.2.0")


def _prepare(pack: Pack | PathLike, version: str | None, scratch: Path) -> Path:
    """A verified pack folder holding the version to publish."""
    if version is not None:
        version = version.removeprefix("v")
    if isinstance(pack, Pack):
        pack = pack if version is None else pack.with_version(version)
        return pack.save_pretrained(scratch / "pack")
    folder = Path(pack)
    loaded = Pack.from_pretrained(folder)  # refuses anything that is not a valid pack
    if version is None or version == loaded.version:
        return folder
    return loaded.with_version(version).save_pretrained(scratch / "pack")


def _published(source: PackSource, repo_id: str) -> dict[str, str]:
    try:
        return source.versions(repo_id)
    except PackNotFoundError:
        return {}


def publish(
    pack: Pack | PathLike,
    repo_id: str,
    *,
    version: str | None = None,
    private: bool = False,
    token: str | None = None,
    create_pr: bool = False,
    store: PathLike | PackSource | None = None,
) -> Release:
    """Publish ``pack`` (a ``Pack`` or a pack folder) to ``repo_id`` on the Hub or in ``store``.

    ``version`` overrides the pack's own version. Returns the release (repo, version, commit).
    Raises ``HubError`` when the version exists with other content, ``PackError`` when the pack
    is invalid, ``ArgumentError`` for a malformed ``repo_id`` or ``version``. With ``create_pr``
    the release's ``pr_url`` is set and nothing is tagged (``Release.released`` is False).
    """
    check_publish_args(repo_id, version)
    source = open_source(store, token)
    with tempfile.TemporaryDirectory(prefix="l2v-hub-publish-") as scratch:
        folder = _prepare(pack, version, Path(scratch))
        pack_json = (folder / METADATA_FILE).read_bytes()
        meta = json.loads(pack_json)
        version, names = meta["version"], (METADATA_FILE, *sorted(meta["files"]))
        existing = _published(source, repo_id)
        if version in existing:
            theirs, commit = source.read_metadata(repo_id, f"v{version}")
            if theirs == pack_json:
                log.warning(
                    "%s v%s is already published with this content (commit %s)",
                    repo_id,
                    version,
                    commit[:12],
                )
                return Release(repo_id, version, commit)
            raise HubError(
                f"{repo_id} v{version} is already published on {source.where} (commit {commit[:12]}) "
                f"with other content; versions are immutable: bump the version (--version), "
                f"the highest is v{highest_version(existing)}"
            )
        top = highest_version(existing)
        if top is not None and version_key(top) > version_key(version):
            log.warning("%s v%s will not be the default: v%s is higher", repo_id, version, top)
        return source.upload(Upload(folder, names, repo_id, version, private, create_pr))
