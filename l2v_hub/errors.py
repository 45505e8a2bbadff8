"""The few named exceptions l2v-hub raises.

Every error a user can act on is one of these; each message names the thing at fault and what was
expected.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "HubError",
    "IncompatiblePackError",
    "L2VHubError",
    "PackError",
    "PackNotFoundError",
]


class L2VHubError(Exception):
    """Base class of every l2v-hub error."""


class PackError(L2VHubError, ValueError):
    """A pack is malformed, tampered with or unreadable (names the file and the field)."""


class IncompatiblePackError(L2VHubError, ValueError):
    """A pack does not fit the model it is applied to (names both values)."""


class HubError(L2VHubError):
    """The Hub or a local store refused or failed a request (names the repo, revision and cause)."""


class PackNotFoundError(HubError, LookupError):
    """No pack exists for what was asked: says what was looked for, and where."""


class BuildError(L2VHubError, ValueError):
    """Bad input to the builder: malformed pairs, an unreadable target config, an unknown model."""
