"""Serve packs on vLLM: a ``vllm.general_plugins`` entry point (``register``) that loads the packs
named in an engine's ``additional_config["l2v_hub"]`` at start and steers each request by its
``extra_args`` / ``vllm_xargs`` (docs/serving.md). Importing this package does not import vLLM.
"""

from .config import CONFIG_KEY, REQUEST_KEYS, EngineSteering, LoadedPack, RequestSteering
from .plugin import register

__all__ = ["CONFIG_KEY", "REQUEST_KEYS", "EngineSteering", "LoadedPack", "RequestSteering",
           "register"]
