"""Released tags do not move: the commit each ``(repo, tag)`` first resolved to is remembered.

Releases are immutable by our rule, but a tag on the Hub can be deleted and made again on another
commit, with a consistent ``pack.json``, and nothing in the pack would show it. So the first pull
of a tag records its commit (trust on first use) under ``$HF_HOME/l2v-hub/tags/``, one small file
per source, repo and tag, and a later pull that finds the tag elsewhere is refused, naming both
commits, unless the caller accepts the move (``accept_moved_tag=True``,
``l2v-hub pull --accept-moved-tag``). Pins by commit need none of this.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

from ..errors import PackError
from ..files import atomic_write
from .source import Release

__all__ = ["check_tag", "forget_source", "record_path", "remember_tag"]

log = logging.getLogger(__name__)


def _source_dir(where: str) -> Path:
    from huggingface_hub import constants

    readable = re.sub(r"[^A-Za-z0-9.]+", "-", where.removeprefix("the ")).strip("-")[-60:]  # the tail tells stores apart
    source = f"{readable}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"
    return Path(constants.HF_HOME) / "l2v-hub" / "tags" / source


def record_path(where: str, release: Release) -> Path:
    """The file that holds the commit ``release.tag`` of ``release.repo_id`` resolved to on
    ``where`` (one folder per source: two Hubs may both have a repo of that name)."""
    return _source_dir(where) / release.repo_id.replace("/", "--") / release.tag


def forget_source(where: str) -> None:
    """Forget every tag recorded for the source ``where``: for its owner, who deleted a local
    store and publishes into a new one at the same place (its versions are new commits)."""
    shutil.rmtree(_source_dir(where), ignore_errors=True)


def check_tag(where: str, release: Release, *, accept_moved: bool = False) -> None:
    """Refuse ``release`` when its tag resolved to another commit here before."""
    path = record_path(where, release)
    try:
        known = path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return  # first use
    if known == release.commit:
        return
    if accept_moved:
        log.warning(
            "%s %s moved from commit %s to %s on %s; accepted (accept_moved_tag)",
            release.repo_id, release.tag, known, release.commit, where,
        )
        return
    raise PackError(
        f"{release.repo_id} {release.tag} on {where} now points to commit {release.commit}, but "
        f"it pointed to commit {known} when it was first pulled here; released versions must not "
        f"move, so it is refused. If the publisher moved it on purpose and you trust the new "
        f"commit, accept it once: `l2v-hub pull {release.repo_id}@{release.tag} "
        f"--accept-moved-tag` (or pull(..., accept_moved_tag=True)); or pin a commit "
        f"({release.repo_id}@<sha>). The record is {path}"
    )


def remember_tag(where: str, release: Release) -> None:
    """Record the commit of a verified pull by tag (a no-op when it is recorded already)."""
    path = record_path(where, release)
    if path.is_file() and path.read_text().strip() == release.commit:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, f"{release.commit}\n".encode())
