"""The consumer side: apply a pack to a loaded transformers model (``l2v_hub.patch``).

Semantics (normative): docs/loader.md.
"""

from .layers import BLOCK_PATHS, find_blocks, text_dims
from .patch import MAX_STRENGTH, Patch, as_pack, check_strength, patch, unpatch

__all__ = ["BLOCK_PATHS", "MAX_STRENGTH", "Patch", "as_pack", "check_strength", "find_blocks", "patch", "text_dims",
           "unpatch"]
