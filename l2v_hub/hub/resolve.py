"""Find the pack for a model from the model alone, so ``l2v_hub.patch(model)`` needs nothing else.

The model id comes from ``model.name_or_path`` (or ``config._name_or_path``); a Hub cache snapshot
path ``.../models--org--name/snapshots/<sha>`` yields the id and the revision; any other local path
needs ``model_id=``. Then, in order: the user's registry, the curated index. Only those are applied
unasked: anyone can publish a pack that names a popular model, so Hub discovery only *lists*
candidates (in the error) unless the caller opts in (``allow_discovery=True`` or
``$L2V_HUB_ALLOW_DISCOVERY=1``), and then the pack applied is named in a warning. A registry entry
whose pinned commit or pack.json hash does not match is refused outright: resolution never falls
through to a weaker source.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import PackError, PackNotFoundError
from ..metadata import check_model_id, model_slug
from ..pack import Pack, PathLike
from .pull import pull
from .registry import Registry, RegistryEntry, load_curated, load_user, user_registry_path
from .source import PackSource, PulledPack, highest_version, open_source, version_key

__all__ = [
    "DISCOVERY_ENV",
    "ModelIdentity",
    "Resolution",
    "discovery_allowed",
    "find_pack",
    "identify_model",
    "next_step",
    "resolve_pack",
]

DISCOVERY_ENV = "L2V_HUB_ALLOW_DISCOVERY"

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
    found_in: str  # 'user registry ...', 'curated index (...)' or 'discovery on ... (allowed)'


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


def discovery_allowed(allow: bool | None = None) -> bool:
    """``allow`` when given, else whether ``$L2V_HUB_ALLOW_DISCOVERY`` is 1 / true / yes / on."""
    if allow is not None:
        return bool(allow)
    return os.environ.get(DISCOVERY_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _candidates(source: PackSource, model_id: str) -> list[tuple[str, str]]:
    """``(repo, highest version)`` of every pack that lists ``model_id``, highest version first."""
    found = []
    for repo in source.discover(model_id):
        try:
            top = highest_version(source.versions(repo))
        except PackNotFoundError:  # listed, then gone (or not cached offline)
            continue
        if top is not None:
            found.append((repo, top))
    return sorted(found, key=lambda c: (version_key(c[1]), c[0]), reverse=True)


def _pull_discovered(source: PackSource, model_id: str, repo: str, version: str) -> PulledPack:
    pulled = pull(repo, f"v{version}", store=source)
    if pulled.pack.target.model_id.casefold() != model_id.casefold():
        raise PackError(
            f"{pulled.release} is listed under {model_id} but its pack.json targets {pulled.pack.target.model_id}"
        )
    log.warning(
        "applying %s, found by discovery on %s because discovery was allowed: it is NOT in a "
        "registry, so nobody reviewed it; pin it in your registry after checking it "
        "(l2v-hub registry add %s@v%s)",
        pulled.release,
        source.where,
        repo,
        version,
    )
    return pulled


def _not_applied(candidates: list[tuple[str, str]], where: str) -> str:
    named = ", ".join(f"{repo}@v{version}" for repo, version in candidates[:5])
    more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
    first = f"{candidates[0][0]}@v{candidates[0][1]}"
    return (
        f"discovery on {where} found {named}{more}: NOT applied, nobody reviewed them. To use one, "
        f"name it (l2v_hub.patch(model, '{first}')), pin it in your registry after checking it "
        f"(l2v-hub registry add {first}), or allow discovery (allow_discovery=True, or "
        f"{DISCOVERY_ENV}=1)"
    )


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
    allow_discovery: bool | None = None,
) -> Resolution:
    """Like ``resolve_pack``, also saying where the pack was found."""
    ident = identify_model(model_or_id, model_id=model_id, revision=revision)
    allow = discovery_allowed(allow_discovery)
    resolution = _find(ident, registry, open_source(store, token), token, allow)
    _check_revision(resolution.pulled.pack, ident)
    return resolution


def _find(
    ident: ModelIdentity,
    registry: PathLike | Registry | None,
    source: PackSource,
    token: str | None,
    allow_discovery: bool,
) -> Resolution:
    user = registry if isinstance(registry, Registry) else load_user(registry)
    curated = load_curated(token)
    registries = [r for r in (user, curated) if r is not None]
    looked = [] if user else [f"user registry: none ({user_registry_path()} does not exist)"]
    for reg in registries:
        entries = reg.for_target(ident.model_id)
        if entries:
            return Resolution(_pull_entry(source, entries[0], reg.origin), reg.origin)
        looked.append(f"{reg.origin}: no entry")
    candidates: list[tuple[str, str]] = []
    try:
        candidates = _candidates(source, ident.model_id)
    except PackError:
        raise
    except Exception as exc:  # discovery is best effort; its failure is reported with the rest
        looked.append(f"discovery on {source.where}: failed ({exc})")
    else:
        if not candidates:
            looked.append(f"discovery on {source.where}: no pack lists it as base model")
    if candidates and allow_discovery:
        pulled = _pull_discovered(source, ident.model_id, *candidates[0])
        return Resolution(pulled, f"discovery on {source.where} (not reviewed; allowed)")
    if candidates:
        looked.append(_not_applied(candidates, source.where))
    raise PackNotFoundError(
        f"no registered l2v-hub pack for {ident.model_id}; looked in: "
        + "; ".join(looked)
        + _closest(ident, registries)
        + (f". {curated.origin} lists no pack yet (none is published)" if not curated.entries else "")
        + ". " + next_step(ident.model_id)
    )


def next_step(model_id: str) -> str:
    """What to do when no pack is registered for ``model_id``: the build command for it, and how
    to name a pack instead (the last sentence of every "no pack for this model" error)."""
    folder = f"packs/{model_slug(model_id)}"
    return (
        f"Next step: build and calibrate one yourself (any chat LLM as the source; one of the "
        f"target's own family transfers best): l2v-hub build --llm "
        f"HuggingFaceTB/SmolLM2-135M-Instruct --target {model_id} --calibrate --out {folder} ; "
        f"then apply it as a local folder, l2v_hub.patch(model, '{folder}'), or name a published "
        "pack as org/name@version, e.g. l2v_hub.patch(model, 'org/name@1.0.0')"
    )


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
    allow_discovery: bool | None = None,
) -> Pack:
    """The verified pack for a model (a loaded transformers model, or a Hub model id).

    ``model_id`` names the model when it was loaded from a plain local folder; ``revision`` is the
    model's revision (read from a Hub snapshot path when not given); ``registry`` a user registry
    file (default ``$L2V_HUB_REGISTRY``, else ``~/.config/l2v-hub/registry.json``); ``store`` a
    local store to pull from instead of the Hub (default ``$L2V_HUB_STORE``);
    ``allow_discovery`` applies the highest version that Hub discovery finds when no registry
    has the model (default ``$L2V_HUB_ALLOW_DISCOVERY``, else False: candidates are only listed
    in the error). Raises ``PackNotFoundError`` saying what was looked for and where,
    ``PackError`` when a registered pack does not match its pinned commit or hash.
    """
    resolution = find_pack(
        model_or_id, model_id=model_id, revision=revision, registry=registry, store=store,
        allow_discovery=allow_discovery,
    )
    log.info("l2v-hub: %s from %s (%s)", resolution.pulled.release, resolution.found_in,
             resolution.pulled.where)
    return resolution.pulled.pack
