"""The ``l2v_hub`` section of vLLM's ``additional_config`` and the per-request keys.

Engine (docs/serving.md)::

    additional_config={"l2v_hub": {"packs": [REF, ...], "default": REF | "auto" | None,
                                   "model_id": ID}}

REF is a local pack folder, ``org/repo@version`` or ``auto`` (the pack the registries name for the
served model id). Every pack is resolved, pulled, verified and fitted against the served model
when the engine starts, by the loader's own functions (``as_pack``, ``check_fit``), so a pack that
does not fit stops the start with the message ``l2v_hub.patch`` gives.

Request (``SamplingParams.extra_args``, or ``vllm_xargs`` over HTTP): ``l2v_pack`` (a loaded pack's
``name@version``, or ``none``), ``l2v_strength``, ``l2v_positions``. Nothing in a request makes the
engine download or apply anything that was not loaded at start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ArgumentError, PackError
from ..loader.fit import as_pack, check_fit
from ..loader.patch import check_strength, pack_scales
from ..metadata import POSITIONS
from ..pack import Pack

__all__ = ["CONFIG_KEY", "REQUEST_KEYS", "EngineSteering", "LoadedPack", "RequestSteering"]

logger = logging.getLogger(__name__)

CONFIG_KEY = "l2v_hub"
REQUEST_KEYS = ("l2v_pack", "l2v_strength", "l2v_positions")
_ENGINE_KEYS = ("packs", "default", "model_id")
_AUTO = "auto"
_NONE = "none"


@dataclass(frozen=True)
class LoadedPack:
    """A pack loaded at engine start: ``scales`` are its calibrated s_i ([num_layers] float32)."""

    ref: str
    pack: Pack
    scales: torch.Tensor

    @property
    def name(self) -> str:
        """``name@version``, what a request's ``l2v_pack`` names."""
        return f"{self.pack.name}@{self.pack.version}"


@dataclass(frozen=True)
class RequestSteering:
    """How one request is steered: ``pack`` indexes ``EngineSteering.packs``; ``strength`` is
    lambda in units of s_i; ``positions`` a policy of docs/loader.md."""

    pack: int
    strength: float
    positions: str


def _load(ref: str, model: nn.Module, model_id: str | None) -> LoadedPack:
    """Resolve, pull, verify and fit one REF (what ``l2v_hub.patch`` does before hooking)."""
    pack = as_pack(None if ref == _AUTO else ref, model, model_id)
    check_fit(model, pack, model_id, strict=False)
    scales = pack_scales(pack)
    if scales is None:
        raise PackError(
            f"pack {pack.name!r} v{pack.version} is not calibrated: vLLM cannot measure its s_i "
            "at engine start. Calibrate it on the served model first: l2v-hub calibrate PACK "
            "--model TARGET (writes a calibrated version)"
        )
    return LoadedPack(ref, pack, scales)


class EngineSteering:
    """The packs an engine loaded at start and its default; turns requests into steering."""

    def __init__(self, packs: tuple[LoadedPack, ...], default: int | None) -> None:
        self.packs, self.default = packs, default
        self._by_name = {p.name: i for i, p in enumerate(packs)}

    @classmethod
    def from_additional_config(cls, additional_config: Any, model: nn.Module
                               ) -> EngineSteering | None:
        """The engine's steering, or None when ``additional_config`` has no ``l2v_hub`` section
        (the plugin is then inert). ``model``: the served model (its ``config`` is the Hugging
        Face config). Raises ``ArgumentError`` for a malformed section and whatever
        ``l2v_hub.patch`` raises for a pack that cannot be pulled or does not fit."""
        if not isinstance(additional_config, Mapping) or CONFIG_KEY not in additional_config:
            return None
        section = additional_config[CONFIG_KEY]
        if not isinstance(section, Mapping):
            raise ArgumentError(f"additional_config[{CONFIG_KEY!r}] must be an object with keys "
                                f"{', '.join(_ENGINE_KEYS)}; got {type(section).__name__}")
        unknown = sorted(set(section) - set(_ENGINE_KEYS))
        if unknown:
            raise ArgumentError(f"additional_config[{CONFIG_KEY!r}] has unknown keys {unknown}; "
                                f"expected {', '.join(_ENGINE_KEYS)}")
        refs, default, model_id = (section.get(k) for k in _ENGINE_KEYS)
        refs = [] if refs is None else refs
        if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
            raise ArgumentError(f"{CONFIG_KEY}.packs must be a list of pack references (a local "
                                f"folder, 'org/repo@version' or 'auto'); got {refs!r}")
        if default is not None and not (isinstance(default, str) and default):
            raise ArgumentError(f"{CONFIG_KEY}.default must be a pack reference, 'auto' or null; "
                                f"got {default!r}")
        if model_id is not None and not isinstance(model_id, str):
            raise ArgumentError(f"{CONFIG_KEY}.model_id must be a Hub model id; got {model_id!r}")
        wanted = list(dict.fromkeys([*refs, *([default] if default is not None else [])]))
        if not wanted:
            raise ArgumentError(f"{CONFIG_KEY} names no pack: give packs [REF, ...] or a default")
        loaded: list[LoadedPack] = []
        names: dict[str, str] = {}  # REF -> the name@version it resolved to
        for ref in wanted:
            got = _load(ref, model, model_id)
            names[ref] = got.name
            same = next((p for p in loaded if p.name == got.name), None)
            if same is not None and same.pack.directions.equal(got.pack.directions):
                continue  # the same release named twice (a folder and its Hub ref, say)
            if same is not None:
                raise ArgumentError(f"{CONFIG_KEY}.packs: {same.ref!r} and {ref!r} are both "
                                    f"{got.name} but differ; a request could not tell them apart")
            loaded.append(got)
        chosen = None
        if default is not None:
            chosen = next(i for i, p in enumerate(loaded) if p.name == names[default])
        logger.info("l2v-hub: vLLM engine loaded %s (default: %s)",
                    ", ".join(p.name for p in loaded),
                    "none" if chosen is None else loaded[chosen].name)
        return cls(tuple(loaded), chosen)

    def for_request(self, extra_args: Mapping[str, Any] | None) -> RequestSteering | None:
        """The steering a request asks for (None: unsteered), from its ``extra_args``. Raises
        ``ArgumentError`` naming the bad key and what was expected."""
        args = extra_args or {}
        name = args.get("l2v_pack")
        strength, positions = args.get("l2v_strength"), args.get("l2v_positions")
        if name is None:
            if self.default is None:
                if strength is not None or positions is not None:
                    raise ArgumentError(
                        "l2v_strength / l2v_positions given without l2v_pack, and this engine "
                        f"has no default pack; name one of: {self.loaded_names()}")
                return None
            index = self.default
        elif name == _NONE:
            if strength is not None or positions is not None:
                raise ArgumentError("l2v_strength / l2v_positions given with l2v_pack 'none' "
                                    "(unsteered); drop them or name a pack")
            return None
        elif not isinstance(name, str) or name not in self._by_name:
            raise ArgumentError(
                f"l2v_pack {name!r} is not loaded in this engine; loaded: {self.loaded_names()} "
                f"(or 'none'). Packs are loaded at engine start: additional_config "
                f"{CONFIG_KEY}.packs")
        else:
            index = self._by_name[name]
        pack = self.packs[index].pack
        try:
            lam = check_strength(pack.defaults.strength if strength is None else strength)
        except ArgumentError as exc:
            raise ArgumentError(f"l2v_strength: {exc}") from None
        chosen = pack.hook.positions if positions is None else positions
        if chosen not in POSITIONS:
            raise ArgumentError(f"l2v_positions must be one of {', '.join(map(repr, POSITIONS))}, "
                                f"got {chosen!r}")
        return RequestSteering(index, lam, chosen)

    def loaded_names(self) -> str:
        return ", ".join(p.name for p in self.packs)

    def cache_salt(self, steering: RequestSteering | None, prompt_len: int) -> str | None:
        """The prefix-cache salt of a steering configuration (None: unsteered, unsalted).

        The KV of a token depends on the steering of it and of every earlier token, which is the
        pack, strength and policy, and (every policy but ``all``) the prompt length: a request
        whose prompt is another's prompt plus output must not reuse KV steered as generated.
        """
        if steering is None:
            return None
        salt = (f"l2v-hub:{self.packs[steering.pack].name}:{steering.strength!r}:"
                f"{steering.positions}")
        return salt if steering.positions == "all" else f"{salt}:{prompt_len}"

