"""What ``HubSource`` needs around huggingface_hub: its errors turned into ours, and its cache read.

The cache keeps a file of a snapshot as a link to ``blobs/<etag>``, and the Hub's ETag is the
file's git blob sha1 (sha256 for LFS files), so a cached file can be checked against the name of
its own blob: a copy damaged on disk is told apart from a wrong file on the Hub.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import HubError, PackError, PackNotFoundError, clip
from ..metadata import _SEMVER

__all__ = [
    "blob_intact",
    "cached_versions",
    "file_sha256",
    "hub_errors",
    "is_version_tag",
    "offline",
    "why",
]

log = logging.getLogger(__name__)
_HEX = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)


def why(exc: BaseException) -> str:
    """The first line of an error and the notes ``retry.call`` added, for a one-line message."""
    notes = "; ".join(getattr(exc, "__notes__", ()))
    return f"{type(exc).__name__}: {clip(exc, 200)}" + (f"; {notes}" if notes else "")


@contextmanager
def hub_errors(repo_id: str, revision: str | None, action: str, where: str) -> Iterator[None]:
    """Turn huggingface_hub's errors into ours, naming the repo, the revision and the cause."""
    at = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except RepositoryNotFoundError:
        raise PackNotFoundError(
            f"no pack repo '{repo_id}' on {where} (or no access: set HF_TOKEN)"
        ) from None
    except RevisionNotFoundError:
        raise PackNotFoundError(f"'{repo_id}' has no revision '{revision}' on {where}") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        cause = "HF_HUB_OFFLINE=1" if offline() else why(exc.__cause__ or exc)
        raise PackNotFoundError(
            f"{at} is not in the local Hugging Face cache and {where} cannot be asked ({cause})"
        ) from None
    except EntryNotFoundError as exc:
        raise PackError(f"{at} on {where}: a file is missing ({why(exc)})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise HubError(f"{action} {at} on {where} failed: HTTP {status} ({why(exc)})") from None
    except (PackError, HubError):
        raise
    except Exception as exc:  # network errors: their types differ across huggingface_hub versions
        raise HubError(f"{action} {at} on {where} failed: {why(exc)}") from None


def is_version_tag(name: str) -> bool:
    return name.startswith("v") and bool(_SEMVER.match(name[1:]))


def cached_versions(repo_id: str, reason: str) -> dict[str, str]:
    """The versions pulled before (the cache's ``refs/v*``), for when the Hub cannot be asked."""
    refs = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs"
    found = {p.name[1:]: p.read_text().strip() for p in refs.glob("v*") if is_version_tag(p.name)}
    if not found:
        raise PackNotFoundError(
            f"no version of '{repo_id}' in the local Hugging Face cache ({constants.HF_HUB_CACHE}), "
            f"and the Hub cannot be asked ({reason})"
        )
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_intact(path: Path) -> bool:
    """False when the cached file's bytes do not hash to its blob's name (the Hub's ETag)."""
    blob = Path(path).resolve()
    if not _HEX.match(blob.name):  # not a blob named by its hash: nothing to hold it against
        return True
    if len(blob.name) == 64:
        return file_sha256(blob) == blob.name
    data = blob.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == blob.name
