"""Registries: JSON indexes that map a target model id to pinned pack releases.

Three are consulted, in this order: the user's own file (``$L2V_HUB_REGISTRY`` or an argument),
then the curated index, refreshed from its Hub copy (the dataset repo ``$L2V_HUB_INDEX_REPO``,
cached by huggingface_hub) and falling back to the copy shipped in the package when the Hub cannot
be reached. Every entry pins a commit and the sha256 of ``pack.json``, so what resolves is exactly
what was reviewed. Validation here mirrors ``registry/schema.json`` without needing jsonschema.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import HubError, clip
from ..files import atomic_write, dump_json
from ..metadata import _HUB_ID, _SEMVER
from ..pack import PathLike
from .source import PackSource, version_key

__all__ = [
    "INDEX_FILE",
    "INDEX_REPO_ENV",
    "INDEX_TTL_ENV",
    "REGISTRY_ENV",
    "Registry",
    "RegistryEntry",
    "index_repo",
    "load_curated",
    "load_shipped",
    "load_user",
    "push_index",
    "register",
    "shipped_dir",
    "user_registry_path",
]

INDEX_FILE = "index.json"
REGISTRY_ENV = "L2V_HUB_REGISTRY"
INDEX_REPO_ENV = "L2V_HUB_INDEX_REPO"
INDEX_TTL_ENV = "L2V_HUB_INDEX_TTL"
DEFAULT_INDEX_REPO = "l2v-hub/registry"
# A failed fetch of the curated index is tried again after this many seconds (or the TTL, when
# shorter), not after the TTL: a push must not stay invisible for an hour because of one failure.
RETRY_FAILED = 60.0
_HEX40, _HEX64 = re.compile(r"^[0-9a-f]{40}$"), re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryEntry:
    """One pinned pack release for one target model."""

    target: str
    repo_id: str
    version: str
    commit: str
    source: str
    pack_sha256: str
    model_type: str
    hidden_size: int
    recommended: bool = False
    notes: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not (k == "notes" and not v)}


_FIELDS: dict[str, tuple[type, Any, str]] = {  # key: (type, check, what is expected)
    "target": (str, _HUB_ID.match, "a Hub model id 'org/name'"),
    "repo_id": (str, _HUB_ID.match, "a Hub repo id 'org/name'"),
    "version": (str, _SEMVER.match, "a semantic version like '1.2.0'"),
    "commit": (str, _HEX40.match, "a 40-hex commit sha"),
    "source": (str, _HUB_ID.match, "a Hub model id 'org/name'"),
    "pack_sha256": (str, _HEX64.match, "64 lowercase hex digits"),
    "model_type": (str, bool, "a non-empty string"),
    "hidden_size": (int, lambda n: n >= 1, "an integer >= 1"),
    "recommended": (bool, None, "true or false"),
    "notes": (str, None, "a string"),
}
_REQUIRED = set(_FIELDS) - {"notes"}


def _entry(data: Any, where: str) -> RegistryEntry:
    if not isinstance(data, dict):
        raise HubError(f"{where} must be an object")
    if missing := sorted(_REQUIRED - set(data)):
        raise HubError(f"{where}: missing {', '.join(missing)}")
    if extra := sorted(set(data) - set(_FIELDS)):
        raise HubError(f"{where}: unknown key(s) {', '.join(extra)}")
    for key, value in data.items():
        kind, check, expected = _FIELDS[key]
        bad_bool = isinstance(value, bool) and kind is not bool
        if bad_bool or not isinstance(value, kind) or (check is not None and not check(value)):
            raise HubError(f"{where}.{key} must be {expected}, got {value!r:.60}")
    return RegistryEntry(**data)


@dataclass(frozen=True)
class Registry:
    """A validated index; ``origin`` says where it came from, for messages."""

    entries: tuple[RegistryEntry, ...]
    origin: str

    @classmethod
    def parse(cls, data: Any, origin: str) -> Registry:
        if not isinstance(data, dict) or set(data) != {"schema_version", "entries"}:
            raise HubError(
                f"{origin}: must be an object with exactly 'schema_version' and 'entries'"
            )
        if data["schema_version"] != 1 or isinstance(data["schema_version"], bool):
            raise HubError(
                f"{origin}: schema_version must be 1, got {data['schema_version']!r:.40}"
            )
        if not isinstance(data["entries"], list):
            raise HubError(f"{origin}: entries must be a list")
        entries = tuple(_entry(e, f"{origin}: entries[{i}]") for i, e in enumerate(data["entries"]))
        seen: set[tuple[str, str]] = set()
        for e in entries:
            if (e.repo_id, e.version) in seen:
                raise HubError(f"{origin}: {e.repo_id} v{e.version} is listed twice")
            seen.add((e.repo_id, e.version))
            if e.recommended and sum(o.recommended and o.target == e.target for o in entries) > 1:
                raise HubError(f"{origin}: more than one recommended pack for {e.target}")
        return cls(entries, origin)

    @classmethod
    def load(cls, path: PathLike, origin: str | None = None) -> Registry:
        origin = origin or str(path)
        try:
            data = json.loads(Path(path).read_bytes())
        except FileNotFoundError:
            raise HubError(f"{origin}: no such registry file") from None
        except (OSError, ValueError) as exc:
            raise HubError(f"{origin}: cannot be read as JSON ({clip(exc, 160)})") from None
        return cls.parse(data, origin)

    def for_target(self, model_id: str) -> list[RegistryEntry]:
        """Entries for ``model_id``: the recommended one first, then by version, highest first."""
        # Hub ids are case-insensitive.
        found = [e for e in self.entries if e.target.casefold() == model_id.casefold()]
        return sorted(found, key=lambda e: (e.recommended, version_key(e.version)), reverse=True)

    def with_entry(self, entry: RegistryEntry) -> Registry:
        """A copy holding ``entry`` (replacing the same repo and version; one recommended per target)."""
        kept = [e for e in self.entries if (e.repo_id, e.version) != (entry.repo_id, entry.version)]
        if entry.recommended:
            kept = [replace(e, recommended=False) if e.target == entry.target else e for e in kept]
        return Registry((*kept, entry), self.origin)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": 1, "entries": [e.to_json() for e in self.entries]}

    def save(self, path: PathLike) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, dump_json(self.to_json()))
        return target


def register(
    index: PathLike,
    repo_id: str,
    revision: str | None = None,
    *,
    store: PathLike | PackSource | None = None,
    token: str | None = None,
    recommended: bool = False,
    notes: str = "",
) -> RegistryEntry:
    """Pull and verify one release, pin its commit and ``pack.json`` sha256 in the file ``index``.

    The file is created when missing; an entry for the same repo and version is replaced.
    """
    from .pull import pull  # pull -> source only; imported here to keep registry loading light

    pulled = pull(repo_id, revision, store=store, token=token)
    p = pulled.pack
    entry = RegistryEntry(
        target=p.target.model_id,
        repo_id=repo_id,
        version=p.version,
        commit=pulled.release.commit,
        source=p.source.model_id,
        pack_sha256=pulled.pack_sha256,
        model_type=p.target.model_type,
        hidden_size=p.target.hidden_size,
        recommended=recommended,
        notes=notes,
    )
    current = Registry.load(index) if Path(index).exists() else Registry((), str(index))
    current.with_entry(entry).save(index)
    return entry


def shipped_dir() -> Path:
    """``registry/`` as shipped: inside the wheel, or at the root of a source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_registry"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "registry"


def load_shipped() -> Registry:
    return Registry.load(shipped_dir() / INDEX_FILE, "curated index (copy shipped with l2v-hub)")


def user_registry_path() -> Path:
    """Where the user's own registry lives: ``$L2V_HUB_REGISTRY``, else
    ``$XDG_CONFIG_HOME/l2v-hub/registry.json`` (``~/.config/l2v-hub/registry.json``)."""
    named = os.environ.get(REGISTRY_ENV)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config).expanduser() / "l2v-hub" / "registry.json"


def load_user(path: PathLike | None = None) -> Registry | None:
    """The user's own registry: ``path``, else ``user_registry_path()`` (``$L2V_HUB_REGISTRY``,
    which must exist, or the default file, when it exists), else None."""
    if path is None and not os.environ.get(REGISTRY_ENV):
        default = user_registry_path()
        return Registry.load(default, f"user registry {default}") if default.is_file() else None
    path = path or user_registry_path()
    return Registry.load(path, f"user registry {path}")


def index_repo() -> str:
    return os.environ.get(INDEX_REPO_ENV) or DEFAULT_INDEX_REPO


def _check_marker(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "l2v-hub" / f"index-{repo.replace('/', '--')}.checked"


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def load_curated(token: str | None = None) -> Registry:
    """The curated index from its Hub copy, else the copy shipped with the package.

    After a successful fetch the Hub is not asked again for ``$L2V_HUB_INDEX_TTL`` seconds
    (default 3600): the copy in the Hugging Face cache is used. A failed fetch is not cached for
    the TTL, only for ``RETRY_FAILED`` seconds, so a machine without network does not wait on
    every call and a pushed index is seen within a minute.
    """
    from huggingface_hub import hf_hub_download

    repo, marker = index_repo(), _check_marker(index_repo())
    failed = marker.with_suffix(".failed")
    ttl = float(os.environ.get(INDEX_TTL_ENV) or 3600)
    local = _age(marker) < ttl or _age(failed) < min(ttl, RETRY_FAILED)
    try:
        path = hf_hub_download(
            repo, INDEX_FILE, repo_type="dataset", token=token, local_files_only=local
        )
    except Exception as exc:  # offline, missing or unreachable: every failure means "use the shipped copy"
        if not local:
            _touch(failed)
        log.info("curated index %s unavailable (%s: %s); using the shipped copy",
                 repo, type(exc).__name__, clip(exc, 160))
        return load_shipped()
    if not local:
        _touch(marker)
        failed.unlink(missing_ok=True)
    return Registry.load(path, f"curated index (Hub dataset {repo})")


def _touch(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:  # a read-only HF_HOME: the index is fetched more often, nothing worse
        log.info("cannot write %s (%s)", path, exc)


def push_index(path: PathLike, repo_id: str | None = None, token: str | None = None) -> str:
    """Validate the index at ``path`` and publish it as the Hub copy; returns the commit sha."""
    from huggingface_hub import HfApi

    registry = Registry.load(path)
    repo = repo_id or index_repo()
    api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.upload_file(
            path_or_fileobj=dump_json(registry.to_json()),
            path_in_repo=INDEX_FILE,
            repo_id=repo,
            repo_type="dataset",
            commit_message=f"Update the l2v-hub index ({len(registry.entries)} entries)",
        )
    except Exception as exc:
        raise HubError(
            f"pushing the index to dataset {repo} failed: {type(exc).__name__}: {clip(exc, 200)}"
        ) from None
    marker = _check_marker(repo)  # this machine sees the new index at once, not after the TTL
    for stale in (marker, marker.with_suffix(".failed")):
        stale.unlink(missing_ok=True)
    return info.oid
