"""The steering operations and the forward hook that applies one to a decoder block's output.

For a steered token with block output h, direction v (unit norm) and strength lambda:

- ``norm_preserving_add`` (the paper's): h' = ||h|| * u / ||u||, u = h / ||h|| + lambda * v
- ``add``: h' = h + lambda * ||h|| * v

Norms are per token, over the hidden dimension, so lambda means the same on every model.
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


def norm_preserving_add(h: torch.Tensor, v: torch.Tensor, strength: float) -> torch.Tensor:
    """Turn each token's state toward ``v`` and keep its norm.

    Computed as c = h + lambda * ||h|| * v, h' = c * ||h|| / ||c||, which equals the normative
    form (u = c / ||h||) in fewer kernels: the hook runs on every decode step.
    """
    norm = _norm(h)
    c = torch.addcmul(h, norm, v, value=strength)
    # Clamped so that an all-zero state gives zeros, not NaN (also in the backward pass).
    return c * (norm / _norm(c).clamp_min(torch.finfo(c.dtype).tiny))


def add(h: torch.Tensor, v: torch.Tensor, strength: float) -> torch.Tensor:
    """Add ``v`` scaled by ``strength`` times each token's norm."""
    return torch.addcmul(h, _norm(h), v, value=strength)


OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
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
        self.vector = vector
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
        if vector.device != hidden.device or vector.dtype != hidden.dtype:
            # Only if the block runs elsewhere than its weights said at patch time (offloading).
            vector = self.vector = vector.to(hidden.device, hidden.dtype)
        steered = self._op(hidden, vector, self._controls.strength)
        if mask is not True:
            steered = torch.where(mask, steered, hidden)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered
