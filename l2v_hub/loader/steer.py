"""The steering operations and the forward hook that applies one to a decoder block's output.

Pack format v2 (normative: docs/loader.md). For a steered token with block output h, unit
direction v_i, the block's scale s_i (target units, from the pack or measured) and strength lambda,
the push p = lambda * s_i * v_i is a fixed vector, the same for every token:

- ``norm_preserving_add`` (the paper's, arXiv 2511.17910, authors' code): c = h + p,
  h' = c * ||h|| / ||c||
- ``add``: h' = h + p

The push does not depend on the token's own norm, so an attention sink (a first token 15-180x the
norm of the others) barely turns while an ordinary token turns as intended. Both operations run
in float32 whatever the model's dtype, and cast back: fp16 norms overflow at 65504.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import L2VHubError
from .positions import PositionTracker

__all__ = ["OPERATIONS", "BlockSteerer", "Controls", "add", "norm_preserving_add"]


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1, keepdim=True)


def norm_preserving_add(h: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """``h`` ([..., H], any float dtype) turned by the fixed ``push`` ([H]), its norm kept.

    c = h + push, h' = c * ||h|| / ||c||, computed in float32, returned in ``h``'s dtype. An
    all-zero state stays zero (no NaN, also in the backward pass).
    """
    h32 = h.float()
    c = h32 + push
    # Clamped so that an all-zero state gives zeros, not NaN (also in the backward pass).
    return (c * (_norm(h32) / _norm(c).clamp_min(torch.finfo(torch.float32).tiny))).to(h.dtype)


def add(h: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """``h + push``, computed in float32, returned in ``h``'s dtype."""
    return (h.float() + push).to(h.dtype)


OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "norm_preserving_add": norm_preserving_add,
    "add": add,
}


@dataclass
class Controls:
    """What a patch's hooks read on every call, so they change without re-patching."""

    strength: float
    enabled: bool = True


class BlockSteerer:
    """Forward hook of one decoder block: steers the hidden states at the tracked positions.

    Handles both block output types: a Tensor (transformers 5.x) and a tuple whose first item is
    the hidden states (4.51).
    """

    def __init__(self, op: str, vector: torch.Tensor, controls: Controls,
                 tracker: PositionTracker) -> None:
        self._op = OPERATIONS[op]
        self.vector = vector  # s_i * v_i, float32, on the block's device
        self._controls = controls
        self._tracker = tracker

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        if not self._controls.enabled:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        if not isinstance(hidden, torch.Tensor):
            raise L2VHubError(
                f"{type(module).__name__} returned {type(output).__name__}; expected a Tensor or a "
                "tuple starting with the hidden states"
            )
        mask = self._tracker.mask_for(hidden)
        if mask is False:
            return None
        vector = self.vector
        if vector.device != hidden.device:
            # Only if the block runs elsewhere than its weights said at patch time (offloading).
            vector = self.vector = vector.to(hidden.device)
        steered = self._op(hidden, vector * self._controls.strength)
        if mask is not True:
            steered = torch.where(mask, steered, hidden)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered
