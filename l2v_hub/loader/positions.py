"""Which token positions a patch steers, decided once per forward pass of the patched model.

A position is a row's absolute position counted from its first real (non-pad) token. A token is
"generated" when its position is at or after the row's prompt length, the prompt being what the
first forward of a ``generate`` call received (outside ``generate``: a forward with an empty
cache). Both are derived from the 2D ``attention_mask`` (or, without one, the cache length), never
from ``position_ids``, which multimodal RoPE models (Qwen2-VL) compress over image tokens. So the
same tokens are steered with or without the KV cache, with left padding or row by row.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..errors import ArgumentError, L2VHubError

__all__ = ["PositionTracker", "select"]


def select(policy: str, pos: torch.Tensor, prompt: int | torch.Tensor) -> torch.Tensor:
    """Boolean mask of the steered positions: ``pos`` are absolute positions, ``prompt`` the
    prompt length (an int, or one per row as a ``[B, 1]`` tensor)."""
    if policy == "all":
        return torch.ones_like(pos, dtype=torch.bool)
    if policy == "generated":
        return pos >= prompt
    if policy == "first_and_generated":
        return (pos == 0) | (pos >= prompt)
    if policy == "prompt_last":
        return pos == prompt - 1
    if policy == "prompt_last_and_generated":
        return pos >= prompt - 1
    raise ArgumentError(f"unknown positions policy {policy!r}")


def _count(policy: str, start: int, stop: int, prompt: int) -> int:
    """How many of the positions start..stop-1 ``select`` steers, from integers alone."""
    generated = max(0, stop - max(start, prompt))
    if policy == "all":
        return stop - start
    if policy == "generated":
        return generated
    if policy == "first_and_generated":
        return generated + int(start <= 0 < stop and prompt > 0)
    last = int(start <= prompt - 1 < stop)
    if policy == "prompt_last_and_generated":
        return generated + last
    return last  # prompt_last


def _cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    if hasattr(cache, "get_seq_length"):
        return int(cache.get_seq_length())
    if isinstance(cache, tuple | list):  # the legacy tuple-of-tuples format
        return int(cache[0][0].shape[-2]) if len(cache) and len(cache[0]) else 0
    raise L2VHubError(f"cannot read the length of a {type(cache).__name__} cache")


def _positional_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """The names ``function``'s positional arguments bind to, in order (none if unknown)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ()
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = []
    for parameter in parameters:
        if parameter.kind not in kinds:
            break
        names.append(parameter.name)
    return tuple(names)


def _given_prompt(given: dict[str, Any], mask: torch.Tensor | None) -> int | torch.Tensor | None:
    """The prompt length of a ``generate`` call, from what it was given: the real tokens per row
    (a ``[B, 1]`` tensor) when the 2D mask pads, else the width of the inputs (an int, so that a
    decode step without a mask needs no mask tensor). None when generate got no token tensor.
    ``given``: generate's arguments by name."""
    tokens = given.get("inputs_embeds")
    if tokens is None:
        tokens = given.get("inputs", given.get("input_ids"))
    if not isinstance(tokens, torch.Tensor) or tokens.ndim < 2:
        return None
    if mask is not None:
        if tuple(mask.shape) != tuple(tokens.shape[:2]):
            return None  # not the usual layout: the first forward's mask decides, as before
        if not bool(mask.all()):  # one host sync per generate call, not per step
            return (mask != 0).sum(1, keepdim=True)
    return int(tokens.shape[1])


class PositionTracker(threading.local):
    """A forward pre-hook for the patched model plus a wrapper for its ``generate``.

    After each forward pre-hook, ``mask_for(hidden)`` gives the block hooks what to steer: True
    (every token), False (none) or a ``[B, T, 1]`` boolean mask on the hidden state's device.
    The state of the forward in progress is per thread (``threading.local`` runs ``__init__`` again
    in each thread), so threads generating on one patched model do not see each other's tokens.
    """

    def __init__(self, policy: str, forward: Callable[..., Any] | Sequence[str]) -> None:
        self.policy = policy
        names: Sequence[str] = (list(inspect.signature(forward).parameters) if callable(forward)
                                else list(forward))
        self._index = {name: i for i, name in enumerate(names)}
        self._generating = 0
        self._prompt_pending = False
        self._generate_mask: torch.Tensor | None = None  # the 2D mask given to generate
        self._given: int | torch.Tensor | None = None  # the prompt length given to generate
        self._prompt: int | torch.Tensor | None = None  # prompt length, one per row if a tensor
        self._batch = 0
        self._shape: tuple[int, int] | None = None
        self._mask: bool | torch.Tensor = False
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (deepcopy, pickle, torch.save of a patched model) is a fresh tracker with the same
        # policy and forward signature: the state of a forward in progress is not copied, and the
        # model's forward is not pickled with it.
        return (PositionTracker, (self.policy, tuple(self._index)))

    def _arg(self, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
        if name in kwargs:
            return kwargs[name]
        i = self._index.get(name)
        return args[i] if i is not None and i < len(args) else None

    def wrap_generate(self, generate: Callable[..., Any]) -> Callable[..., Any]:
        """``generate`` that marks its first forward as the prompt."""
        # Its positional parameters: GenerationMixin's first is ``inputs``, but a model's own
        # generate may take other things first (Kosmos-2: pixel_values).
        names = _positional_names(generate) or ("inputs",)

        @functools.wraps(generate)
        def generate_steered(*args: Any, **kwargs: Any) -> Any:
            given = {**dict(zip(names, args, strict=False)), **kwargs}
            mask = given.get("attention_mask")
            self._generate_mask = mask if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None
            self._given = _given_prompt(given, self._generate_mask)
            self._generating += 1
            self._prompt_pending = True
            try:
                return generate(*args, **kwargs)
            finally:
                self._generating -= 1
                self._prompt_pending = False

        return generate_steered

    def before_forward(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tokens = self._arg(args, kwargs, "input_ids")
        if tokens is None:
            tokens = self._arg(args, kwargs, "inputs_embeds")
        if not isinstance(tokens, torch.Tensor) or tokens.ndim < 2:
            raise ArgumentError(
                f"a patched {type(module).__name__} needs input_ids or inputs_embeds of shape "
                "[batch, tokens, ...] to know which positions to steer"
            )
        batch, length = int(tokens.shape[0]), int(tokens.shape[1])
        mask = self._arg(args, kwargs, "attention_mask")
        cache = self._arg(args, kwargs, "cache")
        if cache is None:
            cache = self._arg(args, kwargs, "past_key_values")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            self._from_mask(mask, batch, length)
        elif mask is None:
            self._from_columns(cache, self._arg(args, kwargs, "cache_position"), tokens.device,
                               batch, length)
        elif self._generating:
            # A 4D mask: generate built it for a static / hybrid cache (Gemma2/3 in 4.51); the
            # rows' padding comes from the 2D mask generate itself received.
            self._from_columns(cache, self._arg(args, kwargs, "cache_position"), tokens.device,
                               batch, length, self._padding_for(batch, tokens.device))
        else:
            raise ArgumentError(
                f"a patched model needs a 2D attention_mask [batch, past + new tokens] (or none) "
                f"to know which positions to steer; got a {type(mask).__name__} of shape "
                f"{tuple(getattr(mask, 'shape', ()))}. 4D masks are supported inside generate only"
            )
        self._shape = (batch, length)
        self._on_device = {}

    def _padding_for(self, batch: int, device: torch.device) -> torch.Tensor | None:
        """generate's 2D mask as real-token flags, on ``device`` and expanded to ``batch`` rows
        (beams, num_return_sequences); converted once per generate call, not per step."""
        padded = self._generate_mask
        if padded is None or (padded.dtype == torch.bool and padded.device == device
                              and padded.shape[0] == batch):
            return padded
        padded = (padded != 0).to(device)
        if padded.shape[0] != batch:
            padded = padded.repeat_interleave(batch // padded.shape[0], dim=0)
        self._generate_mask = padded
        return padded

    def _given_for(self, batch: int, device: torch.device) -> int | torch.Tensor | None:
        """The prompt length generate was given, for the first forward of a generate call (None
        outside generate): assisted decoding and prompt lookup put draft tokens in that forward,
        so its width is not the prompt's."""
        given = self._given if self._generating else None
        if not isinstance(given, torch.Tensor):
            return given
        given = given.to(device)
        if given.shape[0] != batch and batch % given.shape[0] == 0:  # beams, return sequences
            given = given.repeat_interleave(batch // given.shape[0], dim=0)
        return given

    def _starts_prompt(self, past: int, batch: int) -> bool:
        if self._generating:
            fresh, self._prompt_pending = self._prompt_pending, False
        else:
            fresh = past == 0
        if not fresh and self._prompt is not None and batch != self._batch:
            raise ArgumentError(
                f"the batch changed from {self._batch} to {batch} rows while continuing from a "
                "cache; start the new batch with a fresh cache"
            )
        self._batch = batch
        return fresh or self._prompt is None

    def _from_mask(self, mask: torch.Tensor, batch: int, length: int) -> None:
        if mask.shape[1] < length:
            raise ArgumentError(
                f"attention_mask has {mask.shape[1]} columns for {length} new tokens; it must "
                "cover the cached tokens too (HF convention: [batch, past + new])"
            )
        real = mask != 0
        seen = real.cumsum(1)
        if self._starts_prompt(mask.shape[1] - length, batch):
            given = self._given_for(batch, mask.device)
            self._prompt = seen[:, -1:] if given is None else given
        steer = select(self.policy, seen[:, -length:] - 1, self._prompt) & real[:, -length:]
        self._mask = steer.unsqueeze(-1)

    def _from_columns(self, cache: Any, cache_position: Any, device: torch.device, batch: int,
                      length: int, padded: torch.Tensor | None = None) -> None:
        """No 2D mask in this forward: the new tokens are the next ``length`` columns of every
        row; ``padded`` flags the real tokens of the 2D mask generate received (if any)."""
        if self._generating and isinstance(cache_position, torch.Tensor):
            start, columns = None, cache_position.reshape(1, -1)  # on device: no host sync
        else:
            start, columns = _cache_length(cache), None
        if self._starts_prompt(start or 0, batch):
            given = self._given_for(batch, device)
            if given is not None:
                self._prompt = given
            elif padded is not None:
                self._prompt = padded.sum(1, keepdim=True)
            else:
                self._prompt = start + length if columns is None else columns[:, -1:] + 1
        prompt = self._prompt
        if columns is None:
            if padded is None and isinstance(prompt, int):
                steered = _count(self.policy, start, start + length, prompt)
                if steered in (0, length):  # the usual decode step: no mask tensor at all
                    self._mask = steered == length
                    return
            columns = torch.arange(start, start + length, device=device).reshape(1, -1)
        if padded is None:
            self._mask = select(self.policy, columns, prompt).expand(batch, -1).unsqueeze(-1)
            return
        width = padded.shape[1]
        seen = padded.cumsum(1)
        inside = columns < width
        index = columns.clamp(max=width - 1).expand(batch, -1)
        pos = torch.where(inside, seen.gather(1, index) - 1, seen[:, -1:] + columns - width)
        real = ~inside | padded.gather(1, index)
        self._mask = (select(self.policy, pos, self._prompt) & real).unsqueeze(-1)

    def mask_for(self, hidden: torch.Tensor) -> bool | torch.Tensor:
        """What to steer in ``hidden`` (a block's ``[B, T, H]`` output) in this forward."""
        if self._shape is None or tuple(hidden.shape[:2]) != self._shape or hidden.ndim != 3:
            raise L2VHubError(
                f"a steered block produced hidden states of shape {tuple(hidden.shape)}, but the "
                f"patched model's last forward had [batch, tokens] = {self._shape}; call the "
                "patched model itself (forward or generate), not one of its submodules"
            )
        mask = self._mask
        if isinstance(mask, bool):
            return mask
        moved = self._on_device.get(hidden.device)
        if moved is None:
            moved = self._on_device[hidden.device] = mask.to(hidden.device, non_blocking=True)
        return moved
