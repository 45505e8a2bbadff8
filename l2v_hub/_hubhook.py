"""How ``Pack`` reaches the Hub without importing it: the one-way link between pack.py and hub/.

``l2v_hub.hub`` imports ``l2v_hub.pack`` (it publishes and loads ``Pack``s); ``l2v_hub.pack`` must
not import ``l2v_hub.hub`` back, not even lazily inside a method, or the two form a circle. So the
two ``Pack`` methods that reach the Hub (``push_to_hub``, ``from_pretrained("org/name")``) call the
backend registered here, and ``l2v_hub.hub`` registers itself when it is imported (``import
l2v_hub`` imports it, through the loader). This module imports neither side.
"""

from __future__ import annotations

from typing import Any, Protocol

from .errors import L2VHubError

__all__ = ["HubBackend", "hub_backend", "set_hub_backend"]


class HubBackend(Protocol):
    """What ``Pack`` needs from the Hub code."""

    def publish(self, pack: Any, repo_id: str, **options: Any) -> Any:
        """Publish ``pack``; returns the ``Release``."""

    def pull(self, repo_id: str, revision: str | None, *, token: str | None) -> Any:
        """The verified ``Pack`` of one release of ``repo_id``."""


_BACKEND: HubBackend | None = None


def set_hub_backend(backend: HubBackend) -> None:
    """Called once by ``l2v_hub.hub`` on import."""
    global _BACKEND
    _BACKEND = backend


def hub_backend() -> HubBackend:
    if _BACKEND is None:
        raise L2VHubError("the Hub client is not loaded: import l2v_hub.hub (or l2v_hub) first")
    return _BACKEND
