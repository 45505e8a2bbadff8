"""l2v-hub: build, share and apply L2V-CoT chain-of-thought steering packs for VLMs."""

from . import spectral
from ._version import __version__
from .errors import (
    BuildError,
    HubError,
    IncompatiblePackError,
    L2VHubError,
    PackError,
    PackNotFoundError,
)
from .loader import Patch, patch, unpatch
from .metadata import Defaults, Hook, Method, ModelRef, PairsInfo
from .pack import Pack

__all__ = [
    "BuildError",
    "Defaults",
    "Hook",
    "HubError",
    "IncompatiblePackError",
    "L2VHubError",
    "Method",
    "ModelRef",
    "Pack",
    "PackError",
    "PackNotFoundError",
    "PairsInfo",
    "Patch",
    "TargetSpec",
    "__version__",
    "build_pack",
    "load_llm",
    "patch",
    "spectral",
    "unpatch",
]

# The builder is loaded on first use, so that importing l2v_hub (and the loader) pulls in no
# builder code.
_BUILDER_EXPORTS = ("TargetSpec", "build_pack", "load_llm")


def __getattr__(name: str) -> object:
    if name in _BUILDER_EXPORTS:
        from . import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'l2v_hub' has no attribute {name!r}")
