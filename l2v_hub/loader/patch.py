"""``l2v_hub.patch(model, pack)``: apply a pack to a loaded transformers model, fully or not at all.

Every argument and the pack's fit to the model are checked before the model is touched; the hooks
are then registered in one step that undoes itself on any failure. ``Patch.remove()`` restores the
model exactly (the hooks and the ``generate`` wrapper are the only things ever added).
"""

from __future__ import annotations

import logging
import math
import numbers
import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import (
    ArgumentError,
    L2VHubError,
    PackError,
)
from ..metadata import OPS, POSITIONS
from ..pack import Pack, PathLike
from .compiled import forget_compiled_code, unwrap_compiled
from .families import TRACKED_AT
from .fit import as_pack, check_fit
from .hooks import (
    CONTINUOUS_BATCHING,
    RefusedContinuousBatching,
    SteeredGenerate,
    TrackerHook,
    remove_steering,
    steering_hooks,
)
from .layers import find_blocks
from .positions import PositionTracker
from .scale import measure_scales
from .steer import F32_MAX, BlockSteerer, Controls, push_limit, vector_for

__all__ = ["MAX_STRENGTH", "Patch", "as_pack", "check_strength", "pack_scales", "patch", "unpatch"]

logger = logging.getLogger(__name__)

# |lambda| beyond this pushes by ten times s_i, the block's own scale: a typo, not a setting.
MAX_STRENGTH = 10.0
_ACTIVE: weakref.WeakKeyDictionary[nn.Module, Patch] = weakref.WeakKeyDictionary()
_MISSING = object()


class Patch:
    """A pack applied to a model. Undo it with ``remove()`` or by leaving a ``with`` block.

    ``strength`` and ``enabled`` may be changed at any time, between or during generations.
    """

    def __init__(self, model: nn.Module, pack: Pack, layers: tuple[int, ...], op: str,
                 positions: str, strength: float, layers_path: str, scales: torch.Tensor,
                 scale_origin: str) -> None:
        self.pack, self.layers, self.op, self.positions = pack, layers, op, positions
        self.layers_path = layers_path
        #: s_i of every block (float32, target units) and where it came from: "pack" or
        #: "measured" (an uncalibrated pack: measured on this model at patch time).
        self.scales, self.scale_origin = scales, scale_origin
        self._model_ref = weakref.ref(model)
        # The largest |lambda| whose push is finite in float32 at every steered block, and the
        # block that bounds it (a strength beyond would make inf, then NaN logits).
        self._limit = push_limit(pack.directions, scales, layers)
        self._controls = Controls(self._check_push(strength))
        self._handles: list[RemovableHandle] = []
        self._modules: list[nn.Module] = []
        # The instance attributes patch set on the model: name -> (what it set, what was there).
        self._attributes: dict[str, tuple[Any, Any]] = {}

    @property
    def strength(self) -> float:
        """lambda, in units of each block's s_i; read by the hooks on every forward."""
        return self._controls.strength

    @strength.setter
    def strength(self, value: float) -> None:
        self._controls.strength = self._check_push(check_strength(value))

    def _check_push(self, strength: float) -> float:
        limit, block = self._limit
        if abs(strength) > limit:
            field = ("scale.values" if self.scale_origin == "pack" else "the measured s_i") + f"[{block}]"
            raise ArgumentError(
                f"strength {strength} makes the push strength * s_i * v_i at block {block} "
                f"(s_i = {float(self.scales[block]):.6g}, {field}) larger than float32's largest "
                f"value {F32_MAX:.8g}, where it is formed; with this pack |strength| must be at "
                f"most {limit:.6g}")
        return strength

    @property
    def enabled(self) -> bool:
        """False pauses steering (positions are still tracked, so re-enabling mid-generation
        steers the right tokens)."""
        return self._controls.enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ArgumentError(f"enabled must be True or False, got {value!r}")
        self._controls.enabled = value

    @property
    def active(self) -> bool:
        """Whether the hooks are still on the model."""
        return bool(self._handles)

    def remove(self) -> None:
        """Take every hook off the model; a second call does nothing."""
        for handle in reversed(self._handles):
            handle.remove()
        self._handles.clear()
        model = self._model_ref()
        for name, (ours, previous) in self._attributes.items():
            if model is None:
                break
            if vars(model).get(name) is ours:
                if previous is _MISSING:
                    delattr(model, name)
                else:
                    setattr(model, name, previous)
            else:
                logger.warning("%s.%s was re-wrapped after l2v_hub.patch; left as it is",
                               type(model).__name__, name)
        self._attributes.clear()
        for module in self._modules:
            if _ACTIVE.get(module) is self:
                del _ACTIVE[module]
        self._modules.clear()

    def __enter__(self) -> Patch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = ("enabled" if self.enabled else "disabled") if self.active else "removed"
        return (f"Patch({self.pack.name}@{self.pack.version}, layers={list(self.layers)}, "
                f"op={self.op!r}, positions={self.positions!r}, strength={self.strength}, {state})")

    def _apply(self, model: nn.Module, blocks: nn.ModuleList) -> None:
        tracked = _tracked_module(model)
        tracker = PositionTracker(self.positions, tracked.forward)
        try:
            self._hold(tracked, tracked.register_forward_pre_hook(TrackerHook(tracker),
                                                                  with_kwargs=True))
            for i in self.layers:
                vector = vector_for(blocks[i], self.pack.directions[i] * self.scales[i])
                steerer = BlockSteerer(self.op, vector, self._controls, tracker)
                # First among the block's forward hooks: transformers 5.x records
                # output_hidden_states with its own forward hooks on the blocks, which must see
                # the steered output (what the next block receives), also when they are already
                # registered.
                self._hold(blocks[i], blocks[i].register_forward_hook(steerer, prepend=True))
            if callable(getattr(model, "generate", None)):
                self._set(model, "generate", SteeredGenerate(tracker, model.generate))
            if callable(getattr(type(model), CONTINUOUS_BATCHING, None)):
                self._set(model, CONTINUOUS_BATCHING, RefusedContinuousBatching(type(model).__name__))
        except BaseException:
            self.remove()
            raise

    def _set(self, model: nn.Module, name: str, value: Any) -> None:
        """Set the instance attribute ``name`` of ``model``, to be put back by ``remove()``."""
        self._attributes[name] = (value, vars(model).get(name, _MISSING))
        setattr(model, name, value)

    def _hold(self, module: nn.Module, handle: RemovableHandle) -> None:
        self._handles.append(handle)
        self._modules.append(module)
        _ACTIVE[module] = self


def _tracked_module(model: nn.Module) -> nn.Module:
    """The module whose forward pre-hook tracks positions: the model itself, or where its
    ``generate`` runs an inner model's ``generate`` (``TRACKED_AT``), that inner model, whose
    forward both the model's forward and every generate step go through."""
    path = TRACKED_AT.get(getattr(getattr(model, "config", None), "model_type", None) or "")
    inner: Any = model
    for part in (path.split(".") if path else []):
        inner = getattr(inner, part, None)
    return inner if isinstance(inner, nn.Module) else model


def check_strength(value: Any) -> float:
    """``value`` as a strength ``patch`` accepts (a finite real within ``±MAX_STRENGTH``, in
    units of s_i); raises ``ArgumentError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentError(f"strength must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or abs(value) > MAX_STRENGTH:
        raise ArgumentError(f"strength must be finite and within [-{MAX_STRENGTH:g}, {MAX_STRENGTH:g}] "
                            f"(in units of s_i: 1 adds a push of norm s_i at each steered block; a "
                            f"calibrated pack's default is the largest that kept its target fluent), "
                            f"got {value}")
    return value


def _check_layers(layers: Any, num_layers: int) -> tuple[int, ...]:
    chosen = [layers] if isinstance(layers, int) else layers
    if not isinstance(chosen, Iterable) or isinstance(chosen, str | bytes):
        raise ArgumentError(f"layers must be a block index or a list of them, got {layers!r}")
    chosen = list(chosen)
    bad = [i for i in chosen if isinstance(i, bool) or not isinstance(i, int)]
    if bad or not chosen:
        raise ArgumentError(f"layers must be a non-empty list of integer block indices, got {layers!r}")
    outside = [i for i in chosen if not 0 <= i < num_layers]
    if outside:
        raise ArgumentError(f"layers {outside} are outside the model's text blocks 0..{num_layers - 1} "
                          "(indices are 0-based; negative indices are not accepted)")
    if len(set(chosen)) != len(chosen):
        raise ArgumentError(f"layers {chosen} name a block twice")
    return tuple(sorted(chosen))


def _choice(value: str | None, default: str, name: str, allowed: tuple[str, ...]) -> str:
    chosen = default if value is None else value
    if chosen not in allowed:
        raise ArgumentError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {chosen!r}")
    return chosen


def pack_scales(pack: Pack) -> torch.Tensor | None:
    """The pack's s_i of every block ([num_layers] float32), or None when it is uncalibrated
    (``patch`` then measures them). Raises ``PackError`` for a format v1 pack (no s_i at all)."""
    if pack.schema_version < 2 or pack.scale is None:
        raise PackError(
            f"pack {pack.name!r} v{pack.version} is in format v{pack.schema_version}, whose push "
            "is relative to each token's norm (it breaks models at their attention sink); it is "
            "not applied. Convert it on its target: l2v-hub calibrate PACK --model TARGET "
            "(writes a new, calibrated v2 version)"
        )
    if pack.scale.values is None:
        return None
    return torch.tensor(pack.scale.values, dtype=torch.float32)


def _scales(model: nn.Module, pack: Pack, tokenizer: Any, layers_path: str | None
            ) -> tuple[torch.Tensor, str]:
    """s_i for every block: the pack's (calibrated), or measured on ``model`` now (uncalibrated)."""
    stored = pack_scales(pack)
    if stored is not None:
        return stored, "pack"
    measured = measure_scales(model, pack.scale.measure, tokenizer, layers_path)
    logger.info("pack %s is not calibrated: s_i (%s) measured on %s at patch time", pack.name,
                pack.scale.measure, type(model).__name__)
    return measured, "measured"


def patch(
    model: nn.Module,
    pack: Pack | PathLike | None = None,
    *,
    strength: float | None = None,
    layers: int | Iterable[int] | None = None,
    op: str | None = None,
    positions: str | None = None,
    model_id: str | None = None,
    strict: bool = False,
    layers_path: str | None = None,
    tokenizer: Any = None,
    allow_discovery: bool | None = None,
) -> Patch:
    """Steer ``model`` with ``pack``; anything not given comes from the pack's defaults and hook.

    Each steered block ``i`` gets the fixed push ``strength * s_i * v_i`` (docs/loader.md):
    ``s_i`` from the pack when it is calibrated, else measured on ``model`` once, on a fixed
    neutral text, with ``tokenizer`` (default: loaded from the model's ``name_or_path``).

    Raises ``IncompatiblePackError`` when the pack's target dimensions differ from the model's
    text config (or, with ``strict=True``, its model id) or its scale cannot be measured,
    ``PackError`` for a broken or v1 pack and ``ArgumentError`` (a ``ValueError``) for bad
    arguments; in every case before the model is touched. With no ``pack``, only a registry's
    pack is applied unless ``allow_discovery`` (default ``$L2V_HUB_ALLOW_DISCOVERY``) lets an
    unreviewed pack found on the Hub be applied. See docs/loader.md for the semantics of ``op`` and ``positions``.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = unwrap_compiled(model)
    resolved = as_pack(pack, model, model_id, allow_discovery)
    check_fit(model, resolved, model_id, strict)
    num_layers = resolved.target.num_layers
    chosen = _check_layers(resolved.defaults.layers if layers is None else layers, num_layers)
    lam = check_strength(resolved.defaults.strength if strength is None else strength)
    op = _choice(op, resolved.hook.op, "op", OPS)
    positions = _choice(positions, resolved.hook.positions, "positions", POSITIONS)
    found = find_blocks(model, layers_path)
    taken = {p for m in [*model.modules(), *found.blocks] if (p := _ACTIVE.get(m)) is not None}
    if taken:
        raise L2VHubError(f"{type(model).__name__} is already patched by {taken.pop()!r}; call "
                          "its .remove() or l2v_hub.unpatch(model) first")
    if steering_hooks(model) or any(steering_hooks(b) for b in found.blocks):
        raise L2VHubError(f"{type(model).__name__} is a copy of a patched model (it steers "
                          "already, with no Patch handle); call l2v_hub.unpatch(model) first")
    scales, origin = _scales(model, resolved, tokenizer, layers_path)
    handle = Patch(model, resolved, chosen, op, positions, lam, found.path, scales, origin)
    handle._apply(model, found.blocks)
    forget_compiled_code(model)
    return handle


def unpatch(model: nn.Module) -> int:
    """Remove every patch on ``model`` or any of its modules, also the steering a copy of a
    patched model carries without a handle; return how many were removed."""
    model = unwrap_compiled(model)
    patches = {id(p): p for m in model.modules() if (p := _ACTIVE.get(m)) is not None}
    for p in patches.values():
        p.remove()
    return len(patches) + int(remove_steering(model))
