"""l2v-hub: build, share and apply L2V-CoT chain-of-thought steering packs for VLMs."""

from . import spectral
from ._version import __version__
from .errors import IncompatiblePackError, L2VHubError, PackError
from .loader import Patch, patch, unpatch
from .metadata import Defaults, Hook, Method, ModelRef, PairsInfo
from .pack import Pack

__all__ = [
    "Defaults",
    "Hook",
    "IncompatiblePackError",
    "L2VHubError",
    "Method",
    "ModelRef",
    "Pack",
    "PackError",
    "PairsInfo",
    "Patch",
    "__version__",
    "patch",
    "spectral",
    "unpatch",
]
