"""Publishing, pulling and resolving packs: the Hugging Face Hub, local stores and registries.

``publish`` and ``pull`` work the same against the Hub and a local store (``store=`` or
``$L2V_HUB_STORE``); ``resolve_pack`` finds the pack for a model through the registries and Hub
discovery. See docs/publishing.md.
"""

from typing import Any

from .._hubhook import set_hub_backend
from .publish import publish, suggest_repo_name
from .pull import parse_ref, pull
from .registry import (
    Registry,
    RegistryEntry,
    load_curated,
    load_shipped,
    load_user,
    push_index,
    register,
)
from .resolve import ModelIdentity, Resolution, find_pack, identify_model, next_step, resolve_pack
from .source import PackSource, PulledPack, Release, Upload, open_source
from .store import Store

__all__ = [
    "ModelIdentity",
    "PackSource",
    "PulledPack",
    "Registry",
    "RegistryEntry",
    "Release",
    "Resolution",
    "Store",
    "Upload",
    "find_pack",
    "identify_model",
    "load_curated",
    "load_shipped",
    "load_user",
    "next_step",
    "open_source",
    "parse_ref",
    "publish",
    "pull",
    "push_index",
    "register",
    "resolve_pack",
    "suggest_repo_name",
]


class _PackBackend:
    """``Pack.push_to_hub`` and ``Pack.from_pretrained("org/name")`` land here (see _hubhook.py)."""

    def publish(self, pack: Any, repo_id: str, **options: Any) -> Release:
        return publish(pack, repo_id, **options)

    def pull(self, repo_id: str, revision: str | None, *, token: str | None) -> Any:
        return pull(repo_id, revision, token=token).pack


set_hub_backend(_PackBackend())
