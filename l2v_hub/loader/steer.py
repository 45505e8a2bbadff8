"""The steering operations and the forward hook that applies one to a decoder block's output.

Pack format v2 (normative: docs/loader.md). For a steered token with block output h, unit
direction v_i, the block's scale s_i (target units, from the pack or measured) and strength lambda,
the push p = lambda * s_i * v_i is a fixed vector, the same for every token:

- ``norm_preserving_add`` (the paper's, arXiv 2511.17910, authors' code): c = h + p,
  h' = c * ||h|| / ||c||
- ``add``: h' = h + p

The push does not depend on the token's own norm, so an attention sink (a first token 15-180x the
norm of the others) barely turns while an ordinary token turns as intended. Both operations run
in float32 whatever the model's dtype, on values scaled to at most 1 (fp16 norms overflow at
65504, bf16 and fp32 ones near 1.8e19), and cast back; a result beyond the dtype's finite range
saturates at its largest value rather than becoming inf.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import L2VHubError
from .positions import PositionTracker

__all__ = ["F32_MAX", "OPERATIONS", "BlockSteerer", "Controls", "add", "norm_preserving_add",
           "push_limit", "vector_for"]


_TINY = torch.finfo(torch.float32).tiny
#: float32's largest finite value: every push must stay within it (docs/loader.md).
F32_MAX = float(torch.finfo(torch.float32).max)


def _amax(x: torch.Tensor) -> torch.Tensor:
    """The largest |entry| of each token (detached, at least float32's smallest normal)."""
    return x.detach().abs().amax(-1, keepdim=True).clamp_min(_TINY)


def _norm(x: torch.Tensor) -> torch.Tensor:
    """||x|| over the last dimension without overflow or underflow in float32: ||x / m|| * m
    with m = max |x_j| (detached: the result is the same function of x, so is its gradient)."""
    m = _amax(x)
    return torch.linalg.vector_norm(x / m, dim=-1, keepdim=True) * m


def _saturate(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype``, clamped to the dtype's largest finite value.

    Where the true result is beyond the dtype's range (a turned state with an entry above 65504
    in fp16), a plain cast gives inf and the next RMSNorm NaN for the whole sequence; the entry
    saturates instead (so such a token is off the formula by its excess). A NaN stays NaN.
    """
    big = torch.finfo(dtype).max
    return x.clamp(-big, big).to(dtype)


def norm_preserving_add(h: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """``h`` ([..., H], any float dtype) turned by ``push`` (float32: one fixed [H] vector, or one
    per token, [..., H] broadcastable to ``h``, as vLLM's batches of requests need), its norm kept.

    c = h + push, h' = c * ||h|| / ||c||, in float32 and right over each dtype's whole finite
    range: a bf16 or fp32 state near 3e38 has a norm, and h + p entries, beyond float32, so c is
    formed from h and p divided by k = the largest |entry| of both, and each norm is taken on
    values scaled to at most 1 (all scales are constants of the formula: it is homogeneous).
    Returned in ``h``'s dtype, saturated at its largest finite value. An all-zero state stays
    zero (no NaN, also in the backward pass).
    """
    h32 = h.float()
    m = _amax(h32)
    k = torch.maximum(m, push.detach().abs().amax(-1, keepdim=True))  # per token if push is
    c = h32 / k + push / k
    direction = c / _norm(c).clamp_min(_TINY)  # an all-zero c (h = p = 0): zeros, not NaN
    # ||h|| = ||h / m|| * m, multiplied last: only a result beyond float32 can overflow (to inf,
    # then saturated), never 0 * inf.
    return _saturate(direction * torch.linalg.vector_norm(h32 / m, dim=-1, keepdim=True) * m,
                     h.dtype)


def add(h: torch.Tensor, push: torch.Tensor) -> torch.Tensor:
    """``h + push`` (``push`` as for ``norm_preserving_add``), computed in float32, returned in ``h``'s dtype, saturated at its largest
    finite value (float32 overflows only where the true sum is beyond every dtype's range)."""
    return _saturate(h.float() + push, h.dtype)


OPERATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "norm_preserving_add": norm_preserving_add,
    "add": add,
}


@dataclass
class Controls:
    """What a patch's hooks read on every call, so they change without re-patching."""

    strength: float
    enabled: bool = True


# Forwards between a training forward and its backward whose steering a block keeps (enough for
# gradient accumulation over many micro-batches; each entry is a mask of [batch, tokens] bools).
_KEPT_FORWARDS = 256


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (a checkpointed block being recomputed)."""
    task = getattr(torch._C, "_current_graph_task_id", None)
    return task is not None and task() != -1


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
        # The push strength * s_i * v_i of the last strength used: formed again only when the
        # strength changes, not on every decode step.
        self._push: tuple[float, torch.Tensor] | None = None
        # Training forwards: (block input's address, shape) -> (mask, strength) they steered with.
        self._forwards: OrderedDict[tuple[int, tuple[int, ...]], tuple[Any, float]] = OrderedDict()

    def _steering(self, module: torch.nn.Module, args: Any, hidden: torch.Tensor) -> tuple[Any, float]:
        """What to steer in this call, and at what strength.

        Gradient checkpointing runs a block's forward again inside backward, after other forwards
        may have moved the position tracker on (transformers 4.51 checkpoints each block's
        ``__call__``, hooks included). The recompute gets the same input tensor (same storage), so
        a training forward's mask and strength are kept under the input's address and shape, and
        a recompute inside backward steers exactly what the forward it recomputes steered.
        """
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        key = None if first is None else (first.data_ptr(), tuple(first.shape))
        if key is not None and module.training and _in_backward():
            saved = self._forwards.get(key)
            if saved is not None:
                return saved
        steering = (self._tracker.mask_for(hidden) if self._controls.enabled else False,
                    self._controls.strength)
        if key is not None and module.training:
            self._forwards[key] = steering
            self._forwards.move_to_end(key)
            while len(self._forwards) > _KEPT_FORWARDS:
                self._forwards.popitem(last=False)
        return steering

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        if not isinstance(hidden, torch.Tensor):
            raise L2VHubError(
                f"{type(module).__name__} returned {type(output).__name__}; expected a Tensor or a "
                "tuple starting with the hidden states"
            )
        width = self.vector.shape[-1]
        if hidden.ndim != 3 or hidden.shape[-1] != width:
            # Hyper-connection blocks (Qwen4-Exp, GLM-5-Next, HY-V4-VL) carry several residual
            # streams, stacked ([B, T, n, H]) or side by side ([B, T, n * H]).
            raise L2VHubError(
                f"{type(module).__name__} returned hidden states of shape {tuple(hidden.shape)}, "
                f"not [batch, tokens, {width}]: a block with several residual streams "
                "(hyper-connections) cannot be steered; see docs/loader.md"
            )
        mask, strength = self._steering(module, args, hidden)
        if mask is False or strength == 0:
            # A zero push is the identity: the block output is returned untouched, bit for bit
            # (the float32 round trip of the op would move it by an ulp). Decided on the host.
            return None
        if self.vector.device != hidden.device:
            # Only if the block runs elsewhere than its weights said at patch time (offloading).
            self.vector, self._push = self.vector.to(hidden.device), None
        if self._push is None or self._push[0] != strength:
            self._push = (strength, self.vector * strength)
        steered = self._op(hidden, self._push[1])
        if mask is not True:
            steered = torch.where(mask, steered, hidden)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered


def push_limit(directions: torch.Tensor, scales: torch.Tensor, layers: tuple[int, ...]
               ) -> tuple[float, int]:
    """(the largest |lambda| for which every entry of lambda * s_i * v_i is finite in float32 at
    every block of ``layers``, the block that bounds it), for unit ``directions`` [L, H] and
    ``scales`` [L] (float32), from the float32 s_i * v_i the hooks hold. Checked in float64, where
    the product of two float32 values is exact to within float32's rounding, so a strength that
    passes never rounds to inf."""
    peaks = {i: float((directions[i] * scales[i]).abs().max()) for i in layers}
    block = max(peaks, key=peaks.__getitem__)
    peak = peaks[block]
    return (F32_MAX / peak if peak > 0 else float("inf")), block


def vector_for(block: nn.Module, direction: torch.Tensor) -> torch.Tensor:
    """s_i * v_i in float32 (the ops compute in float32) on the device the block computes on
    (once, at patch time)."""
    weight = next((p for p in block.parameters() if p.is_floating_point()), None)
    device = direction.device if weight is None else weight.device
    if device.type == "meta":  # accelerate offloading: the weights arrive at run time
        hooks = (getattr(m, "_hf_hook", None) for m in block.modules())
        found = next((h.execution_device for h in hooks
                      if getattr(h, "execution_device", None) is not None), None)
        device = torch.device(found) if found is not None else direction.device
    with torch.inference_mode(False), torch.no_grad():
        return direction.detach().to(device=device, dtype=torch.float32, copy=True)
