"""torch.compile and a patched model: both orders steer exactly as eager does.

- The model's forward pre-hook (the position tracker, ``hooks.TrackerHook``) runs eagerly,
  excluded from compilation with ``torch.compiler.disable``: it writes per-thread state (a ``threading.local``), which compiled
  code would drop, and it decides once per forward on the ``[batch, tokens]`` mask. The block hooks
  inside the forward are traced; they read the tracker's mask as a graph input.
- Compiled code does not guard on hooks added later (``torch._dynamo.config.
  skip_nnmodule_hook_guards``), so a model compiled and run before ``patch`` would silently stay
  unsteered: ``patch`` clears torch.compile's caches when anything was compiled in this process,
  and compiled code retraces with the hooks on its next call.
- ``patch(torch.compile(model))`` patches the model it wraps (``_orig_mod``), which the compiled
  wrapper calls.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch
from torch import nn

__all__ = ["forget_compiled_code", "unwrap_compiled"]

logger = logging.getLogger(__name__)


def unwrap_compiled(model: Any) -> Any:
    """The model a ``torch.compile(model)`` wrapper (an ``OptimizedModule``) calls, else ``model``."""
    dynamo = sys.modules.get("torch._dynamo.eval_frame")
    if dynamo is not None and isinstance(model, dynamo.OptimizedModule):
        return model._orig_mod
    return model


def forget_compiled_code(model: nn.Module) -> None:
    """Clear torch.compile's caches if anything was compiled in this process, so that compiled
    code of ``model`` retraces with the hooks just added (or just removed)."""
    if "torch._dynamo" not in sys.modules:
        return
    convert_frame = sys.modules.get("torch._dynamo.convert_frame")
    if convert_frame is not None and getattr(convert_frame, "FRAME_COUNTER", 1) == 0:
        return  # nothing was ever compiled
    torch.compiler.reset()
    logger.warning("l2v_hub cleared torch.compile's caches for %s (compiled code does not see "
                   "hooks added later): compiled functions recompile on their next call",
                   type(model).__name__)
