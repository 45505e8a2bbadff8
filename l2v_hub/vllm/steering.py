"""Steering inside a vLLM model: one forward hook per steered decoder layer, over persistent
buffers that the host fills before each forward (``ModelSteering.plan``).

vLLM runs every request of a step as one flattened batch of tokens. Per token the buffers hold
the index of its pack (0: unsteered), its strength, whether its position is steered (the
loader's ``positions.select`` on the token's index within its request and the request's prompt
length) and whether its pack's op is ``norm_preserving_add``. The hooks read them with gathers
and ``torch.where`` only: no host synchronisation, no shape that depends on the data, so the same
code runs eager, under torch.compile and inside CUDA graphs.

vLLM's decoder layers (Qwen2, Llama, Gemma 3, ...) return ``(hidden_states, residual)`` and leave
the residual add to the next layer's fused add + RMSNorm: the transformers block output is their
sum. A steered token's sum h' is returned as ``(h', 0)``, so the next fused add rebuilds exactly
h'; an unsteered token's pair is returned untouched (bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import L2VHubError
from ..loader.positions import select
from ..loader.steer import OPERATIONS, add, norm_preserving_add
from ..metadata import POSITIONS
from .config import EngineSteering, RequestSteering

__all__ = ["LayerSteerer", "ModelSteering", "TokenBuffers"]


class TokenBuffers:
    """Per-token steering of the step in progress, ``[max_tokens]`` each, on the model's device:
    ``pack`` (int64, 0 = unsteered, else pack index + 1), ``strength`` (float32, lambda),
    ``steer`` (bool, the position is steered) and ``npa`` (bool, the op is norm_preserving_add)."""

    def __init__(self, max_tokens: int, device: torch.device) -> None:
        self.pack = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.strength = torch.zeros(max_tokens, dtype=torch.float32, device=device)
        self.steer = torch.zeros(max_tokens, dtype=torch.bool, device=device)
        self.npa = torch.zeros(max_tokens, dtype=torch.bool, device=device)

    def fill(self, pack: torch.Tensor, strength: torch.Tensor, steer: torch.Tensor,
             npa: torch.Tensor) -> None:
        """Copy one step's CPU tensors (``[T]``) in and clear the rest (padding tokens)."""
        n = int(pack.shape[0])
        if n > self.pack.shape[0]:
            raise L2VHubError(f"a vLLM step has {n} tokens, more than the {self.pack.shape[0]} "
                              "the steering buffers hold (max_num_batched_tokens)")
        for buffer, values in ((self.pack, pack), (self.strength, strength), (self.steer, steer),
                               (self.npa, npa)):
            buffer[:n].copy_(values, non_blocking=True)
            buffer[n:].zero_()

    def clear(self) -> None:
        """No token steered (dummy and profiling runs)."""
        self.steer.zero_()


class LayerSteerer:
    """Forward hook of decoder layer ``layer``: steers its output, per token, from the buffers.

    ``vectors``: ``[1 + packs, H]`` float32, row 0 zero and row p + 1 pack p's s_i * v_i (zero
    where pack p does not steer this layer); ``active``: ``[1 + packs]`` bool, whether it does.
    """

    def __init__(self, layer: int, vectors: torch.Tensor, active: torch.Tensor,
                 tokens: TokenBuffers, ops: frozenset[str]) -> None:
        self.layer, self.vectors, self.active, self.tokens = layer, vectors, active, tokens
        # One op among the loaded packs: only it is computed (the usual case).
        self._op = OPERATIONS[next(iter(ops))] if len(ops) == 1 else None

    def __call__(self, module: nn.Module, args: Any, output: Any) -> Any:
        pair = isinstance(output, tuple)
        hidden = output[0] if pair else output
        residual = output[1] if pair and len(output) > 1 else None
        if not isinstance(hidden, torch.Tensor) or hidden.ndim != 2 or (
                residual is not None and not isinstance(residual, torch.Tensor)):
            raise L2VHubError(
                f"{type(module).__name__} (layer {self.layer}) returned {type(output).__name__}; "
                "expected hidden states [tokens, hidden] or (hidden states, residual)")
        total = hidden if residual is None else hidden + residual  # the transformers block output
        n = total.shape[0]
        t = self.tokens
        index = t.pack[:n]
        push = self.vectors[index] * t.strength[:n].unsqueeze(-1)
        steer = (t.steer[:n] & self.active[index]).unsqueeze(-1)
        if self._op is not None:
            steered = self._op(total, push)
        else:
            steered = torch.where(t.npa[:n].unsqueeze(-1), norm_preserving_add(total, push),
                                  add(total, push))
        if residual is None:
            return torch.where(steer, steered, hidden)
        return (torch.where(steer, steered, hidden),
                torch.where(steer, torch.zeros_like(residual), residual), *output[2:])


class ModelSteering:
    """The steering of one vLLM model (one per worker): hooks, buffers, and the host-side plan."""

    def __init__(self, engine: EngineSteering, blocks: Sequence[nn.Module], device: torch.device,
                 max_tokens: int) -> None:
        self.engine = engine
        self.tokens = TokenBuffers(max_tokens, device)
        self._npa = np.array([False] + [p.pack.hook.op == "norm_preserving_add"
                                        for p in engine.packs])
        ops = frozenset(p.pack.hook.op for p in engine.packs)
        self._requests: dict[str, RequestSteering | None] = {}
        self.hooks: list[Any] = []
        steered = sorted({i for p in engine.packs for i in p.pack.defaults.layers})
        for i in steered:
            if not any(p.is_floating_point() for p in blocks[i].parameters()):
                continue  # a layer of another pipeline stage (PPMissingLayer)
            vectors = torch.zeros(1 + len(engine.packs), engine.packs[0].pack.target.hidden_size)
            active = torch.zeros(1 + len(engine.packs), dtype=torch.bool)
            for p, loaded in enumerate(engine.packs):
                if i in loaded.pack.defaults.layers:
                    vectors[p + 1] = loaded.pack.directions[i].float() * loaded.scales[i]
                    active[p + 1] = True
            hook = LayerSteerer(i, vectors.to(device), active.to(device), self.tokens, ops)
            blocks[i].register_forward_hook(hook)
            self.hooks.append(hook)

    def steering_of(self, request_id: str, extra_args: Any) -> RequestSteering | None:
        """A request's steering, parsed once (it was validated when the request was admitted)."""
        if request_id not in self._requests:
            if len(self._requests) > 4096:  # finished requests: forget them now and then
                self._requests.clear()
            self._requests[request_id] = self.engine.for_request(extra_args)
        return self._requests[request_id]

    def plan(self, steerings: Sequence[RequestSteering | None], computed: np.ndarray,
             scheduled: np.ndarray, prompts: np.ndarray) -> None:
        """Fill the buffers for one step: request r (in batch order) runs ``scheduled[r]`` tokens
        from its token index ``computed[r]`` on, its prompt being ``prompts[r]`` tokens long."""
        scheduled = np.asarray(scheduled, dtype=np.int64)
        requests = np.repeat(np.arange(len(steerings)), scheduled)
        starts = np.cumsum(scheduled) - scheduled
        pos = np.asarray(computed, dtype=np.int64)[requests] + (
            np.arange(len(requests)) - starts[requests])
        pack = np.array([0 if s is None else s.pack + 1 for s in steerings], dtype=np.int64)
        lam = np.array([0.0 if s is None else s.strength for s in steerings], dtype=np.float32)
        policy = np.array([-1 if s is None else POSITIONS.index(s.positions) for s in steerings])
        steer = torch.zeros(len(requests), dtype=torch.bool)
        token_policy = policy[requests]
        pos_t = torch.from_numpy(pos)
        prompt_t = torch.from_numpy(np.asarray(prompts, dtype=np.int64)[requests])
        for code in np.unique(policy[policy >= 0]):
            rows = torch.from_numpy(token_policy == code)
            steer[rows] = select(POSITIONS[code], pos_t[rows], prompt_t[rows])
        token_pack = pack[requests]
        self.tokens.fill(torch.from_numpy(token_pack), torch.from_numpy(lam[requests]), steer,
                         torch.from_numpy(self._npa[token_pack]))
