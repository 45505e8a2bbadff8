"""What ``patch`` adds to a model, recognised on the model itself (so also on its copies).

A patched model holds four kinds of l2v-hub objects: the position tracker's ``TrackerHook``,
one ``BlockSteerer`` per steered block, a ``SteeredGenerate`` instance attribute and, where the
model has transformers' continuous batching, a ``RefusedContinuousBatching`` one. All of them
pickle and deep-copy, so ``copy.deepcopy``, ``pickle`` and ``torch.save`` of a patched model give
an independent patched model (docs/loader.md, "Copies"): its own tracker (fresh per-forward
state), its own controls (strength and enabled as at copy time) and a ``generate`` bound to the
copy. The copy has no ``Patch`` handle; ``unpatch(copy)`` finds these objects and removes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ArgumentError
from .positions import PositionTracker
from .steer import BlockSteerer

__all__ = ["CONTINUOUS_BATCHING", "RefusedContinuousBatching", "SteeredGenerate", "TrackerHook",
           "remove_steering", "steering_hooks"]

# transformers 5.x's one entry point of continuous batching: generate_batch,
# continuous_batching_context_manager, generate(cache_implementation="paged") and `transformers
# serve` all get their manager from the model's init_continuous_batching.
CONTINUOUS_BATCHING = "init_continuous_batching"

# Where nn.Module keeps a hook by its id (RemovableHandle.remove deletes from the same dicts).
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs")


class TrackerHook:
    """The patched model's forward pre-hook: the tracker's ``before_forward``, never compiled.

    It runs eagerly even inside ``torch.compile(model)`` / ``model.compile()``: it writes per-thread
    state, which compiled code would drop (docs/loader.md, torch.compile). A class so that it
    pickles: the ``torch.compiler.disable`` wrapper is rebuilt, not copied.
    """

    def __init__(self, tracker: PositionTracker) -> None:
        self.tracker = tracker
        self._run = torch.compiler.disable(tracker.before_forward, recursive=True)

    def __call__(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        return self._run(module, args, kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TrackerHook, (self.tracker,))


class SteeredGenerate:
    """The model's ``generate``, marking its first forward as the prompt (an instance attribute
    of the patched model). A class rather than a closure so that a copy of the model gets one
    bound to the copy: a closure would deep-copy as itself and drive the original model."""

    def __init__(self, tracker: PositionTracker, generate: Callable[..., Any]) -> None:
        self.tracker = tracker
        self.generate = generate
        self._call = tracker.wrap_generate(generate)
        self.__wrapped__ = generate
        self.__doc__ = getattr(generate, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # A bound method pickles as getattr(model, "generate"), evaluated before the model's
        # __dict__ is restored: the class's generate, bound to the copy.
        return (SteeredGenerate, (self.tracker, self.generate))


class RefusedContinuousBatching:
    """The patched model's ``init_continuous_batching`` (an instance attribute): raises, before
    any work, in the caller's thread.

    Continuous batching packs every request's tokens into one row behind a 4D mask and shares
    cached prompt prefixes between requests, so the positions and prompt lengths the tracker
    steers by cannot be told from its forward; run in transformers' worker thread, the tracker's
    error was logged there and every request came back with no tokens. A class so that it
    pickles and deep-copies with the model."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ArgumentError(
            f"a patched {self.model_name} cannot run transformers' continuous batching "
            "(generate_batch, continuous_batching_context_manager, init_continuous_batching, "
            "generate(cache_implementation='paged'), `transformers serve --continuous-batching`): "
            "it packs all requests into one row and shares cached prefixes between them, so "
            "which positions of each request to steer cannot be told. Use model.generate (a "
            "left-padded batch steers each row as it is steered alone), or l2v_hub.unpatch(model)"
        )


def _is_steering(hook: Any) -> bool:
    return isinstance(hook, BlockSteerer | TrackerHook)


def steering_hooks(model: nn.Module) -> list[tuple[nn.Module, int]]:
    """(module, hook id) of every l2v-hub hook on ``model`` and its modules."""
    return [(m, key) for m in model.modules()
            for hooks in (m._forward_hooks, m._forward_pre_hooks)
            for key, hook in hooks.items() if _is_steering(hook)]


def remove_steering(model: nn.Module) -> bool:
    """Take every l2v-hub hook and ``generate`` wrapper off ``model`` (a copy of a patched model,
    which has no ``Patch`` handle); True when there was any."""
    found = steering_hooks(model)
    for module, key in found:
        for name in _HOOK_DICTS:
            getattr(module, name, {}).pop(key, None)
    refusal = isinstance(vars(model).get(CONTINUOUS_BATCHING), RefusedContinuousBatching)
    if refusal:
        delattr(model, CONTINUOUS_BATCHING)
    wrapper = vars(model).get("generate")
    if isinstance(wrapper, SteeredGenerate):
        inner = wrapper.generate
        # The class's own generate is restored by deleting the attribute; anything else that was
        # an instance attribute before patch is put back.
        if getattr(inner, "__func__", None) is getattr(type(model), "generate", None):
            del model.generate
        else:
            model.generate = inner
    return bool(found) or refusal or isinstance(wrapper, SteeredGenerate)
