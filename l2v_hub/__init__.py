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
    "EvalReport",
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
    "calibrate",
    "evaluate",
    "load_llm",
    "patch",
    "spectral",
    "unpatch",
]

# The builder, calibration and evaluation load on first use, so that importing l2v_hub (and the
# loader) pulls in none of their code.
_LAZY = {"TargetSpec": "builder", "build_pack": "builder", "load_llm": "builder",
         "calibrate": "calibrate", "evaluate": "evaluation", "EvalReport": "evaluation"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'l2v_hub' has no attribute {name!r}")
