"""Find the pack for a model from the model alone, so ``l2v_hub.patch(model)`` needs nothing else.

The model id comes from ``model.name_or_path`` (or ``config._name_or_path``); a Hub cache snapshot
path ``.../models--org--name/snapshots/<sha>`` yields the id and the revision; any other local path
needs ``model_id=``. Then, in order: the user's registry, the curated index, Hub discovery (newest
version of an uncurated pack, with a warning). A registry entry whose pinned commit or pack.json
hash does not match is refused outright: resolution never falls through to a weaker source.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import PackError, PackNotFoundError
from ..metadata import check_model_id
from ..pack import Pack, PathLike
from .pull import pull
from .registry import Registry, RegistryEntry, load_curated, load_user
from .source import PackSource, PulledPack, highest_version, open_source, version_key

__all__ = ["ModelIdentity", "Resolution", "find_pack", "identify_model", "resolve_pack"]

log = logging.getLogger(__name__)
_SNAPSHOT = re.compile(
    r"(?:^|[/\\])models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]([0-9a-f]{40})(?:[/\\]|$)"
)


@dataclass(frozen=True)
class ModelIdentity:
    """What resolution knows about a model: its Hub id, and when known its revision and shape."""

    model_id: str
    revision: str | None = None
    model_type: str | None = None
    hidden_size: int | None = None


@dataclass(frozen=True)
class Resolution:
    """The pack found for a model, and which step of the order found it."""

    pulled: PulledPack
    found_in: str  # 'user registry ...', 'curated index (...)' or 'Hub discovery (not curated)'


def _shape(config: Any) -> tuple[str | None, int | None]:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(config, "model_type", None), getattr(text, "hidden_size", None)


def identify_model(
    model_or_id: Any, *, model_id: str | None = None, revision: str | None = None
) -> ModelIdentity:
    """The Hub id (and revision, architecture, hidden size when known) of a model or model id."""
    config = getattr(model_or_id, "config", None)
    if isinstance(model_or_id, str | os.PathLike):
        name = os.fspath(model_or_id)
    else:
        name = (
            getattr(model_or_id, "name_or_path", None)
            or getattr(config, "_name_or_path", None)
            or ""
        )
    model_type, hidden = _shape(config) if config is not None else (None, None)
    snapshot = _SNAPSHOT.search(name)
    if model_id is None and snapshot:
        model_id, revision = f"{snapshot[1]}/{snapshot[2]}", revision or snapshot[3]
    elif model_id is None:
        if not name or os.path.isdir(name) or os.path.isabs(name) or name.startswith((".", "~")):
            raise PackNotFoundError(
                f"cannot tell which Hub model {name or 'this model'!r} is (a local folder, not a Hub "
                "snapshot); pass model_id='org/name'"
            )
        model_id = name
    check_model_id(model_id)
    return ModelIdentity(model_id, revision, model_type, hidden)


def _pull_entry(source: PackSource, entry: RegistryEntry, origin: str) -> PulledPack:
    what = f"{entry.repo_id} v{entry.version} (commit {entry.commit[:12]}) from {origin}"
    try:
        pulled = pull(entry.repo_id, entry.commit, store=source)
    except (PackError, PackNotFoundError) as exc:
        raise PackError(f"registry entry {what} refused: {exc}") from None
    got = pulled.pack
    if pulled.pack_sha256 != entry.pack_sha256:
        raise PackError(
            f"registry entry {what} refused: it pins pack.json sha256 {entry.pack_sha256}, the pack at "
            f"that commit has {pulled.pack_sha256}"
        )
    if got.version != entry.version or got.target.model_id.casefold() != entry.target.casefold():
        raise PackError(
            f"registry entry {what} refused: the pack at that commit is v{got.version} for "
            f"{got.target.model_id}, the entry says v{entry.version} for {entry.target}"
        )
    return pulled


def _discover(source: PackSource, model_id: str) -> PulledPack | None:
    best: tuple[tuple, str, str] | None = None
    for repo in source.discover(model_id):
        top = highest_version(source.versions(repo))
        if top is not None and (best is None or version_key(top) > best[0]):
            best = (version_key(top), repo, top)
    if best is None:
        return None
    pulled = pull(best[1], f"v{best[2]}", store=source)
    if pulled.pack.target.model_id.casefold() != model_id.casefold():
        raise PackError(
            f"{pulled.release} is listed under {model_id} but its pack.json targets {pulled.pack.target.model_id}"
        )
    log.warning(
        "using %s found by Hub discovery: it is NOT in the curated index, so nobody reviewed it; "
        "pin it in your registry after checking it (l2v-hub registry add %s@v%s)",
        pulled.release,
        best[1],
        best[2],
    )
    return pulled


def _closest(ident: ModelIdentity, registries: list[Registry]) -> str:
    if ident.hidden_size is None:
        return ""
    near = sorted(
        {
            f"{e.repo_id}@v{e.version} (for {e.target})"
            for r in registries
            for e in r.entries
            if e.hidden_size == ident.hidden_size and e.model_type == ident.model_type
        }
    )
    if not near:
        return f"; no registered pack has the same architecture ({ident.model_type}, hidden {ident.hidden_size})"
    return f"; closest packs (same architecture and hidden size): {', '.join(near[:5])}"


def find_pack(
    model_or_id: Any,
    *,
    model_id: str | None = None,
    revision: str | None = None,
    registry: PathLike | Registry | None = None,
    store: PathLike | PackSource | None = None,
    token: str | None = None,
) -> Resolution:
    """Like ``resolve_pack``, also saying where the pack was found."""
    ident = identify_model(model_or_id, model_id=model_id, revision=revision)
    resolution = _find(ident, registry, open_source(store, token), token)
    _check_revision(resolution.pulled.pack, ident)
    return resolution


def _find(
    ident: ModelIdentity,
    registry: PathLike | Registry | None,
    source: PackSource,
    token: str | None,
) -> Resolution:
    user = registry if isinstance(registry, Registry) else load_user(registry)
    registries = [r for r in (user, load_curated(token)) if r is not None]
    looked = [] if user else ["user registry: none (set L2V_HUB_REGISTRY)"]
    for reg in registries:
        entries = reg.for_target(ident.model_id)
        if entries:
            return Resolution(_pull_entry(source, entries[0], reg.origin), reg.origin)
        looked.append(f"{reg.origin}: no entry")
    try:
        pulled = _discover(source, ident.model_id)
    except PackNotFoundError as exc:  # a listed repo vanished or is not cached offline
        pulled, looked = None, [*looked, f"discovery on {source.where}: {exc}"]
    except PackError:
        raise
    except Exception as exc:  # discovery is best effort; its failure is reported with the rest
        pulled, looked = None, [*looked, f"discovery on {source.where}: failed ({exc})"]
    else:
        looked.append(f"discovery on {source.where}: no pack lists it as base model")
    if pulled is None:
        raise PackNotFoundError(
            f"no l2v-hub pack for {ident.model_id}; looked in: "
            + "; ".join(looked)
            + _closest(ident, registries)
        )
    return Resolution(pulled, "Hub discovery (not curated)")


def _check_revision(pack: Pack, ident: ModelIdentity) -> None:
    built_for = pack.target.revision
    if built_for and ident.revision and built_for != ident.revision:
        log.warning(
            "%s was built for %s@%s, the model is at revision %s",
            pack.name,
            ident.model_id,
            built_for[:12],
            ident.revision[:12],
        )


def resolve_pack(
    model_or_id: Any,
    *,
    model_id: str | None = None,
    revision: str | None = None,
    registry: PathLike | Registry | None = None,
    store: PathLike | PackSource | None = None,
) -> Pack:
    """The verified pack for a model (a loaded transformers model, or a Hub model id).

    ``model_id`` names the model when it was loaded from a plain local folder; ``revision`` is the
    model's revision (read from a Hub snapshot path when not given); ``registry`` a user registry
    file (default ``$L2V_HUB_REGISTRY``); ``store`` a local store to pull from instead of the Hub
    (default ``$L2V_HUB_STORE``). Raises ``PackNotFoundError`` saying what was looked for and
    where, ``PackError`` when a registered pack does not match its pinned commit or hash.
    """
    resolution = find_pack(
        model_or_id, model_id=model_id, revision=revision, registry=registry, store=store
    )
    log.info("l2v-hub: %s from %s", resolution.pulled.release, resolution.found_in)
    return resolution.pulled.pack
