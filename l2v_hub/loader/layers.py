"""Finding the text decoder blocks of a transformers VLM or LLM, and its text dimensions.

Order: an explicit per-``model_type`` table (the paths of transformers 5.x and 4.51), then the
model's ``get_decoder()``, then a short list of known paths. Every candidate must be a module list
with exactly the text config's number of blocks. Nothing is guessed by counting repeated module
names: on Qwen2-VL the vision tower (32 blocks) is deeper than the text decoder (28).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

from ..errors import ArgumentError, L2VHubError
from .families import BLOCK_PATHS, ENCODER_DECODER, REFUSED, UNVERIFIED, no_placeholders

__all__ = [
    "BLOCK_PATHS", "KNOWN_PATHS", "REFUSED", "DecoderBlocks", "TextDims", "find_blocks", "text_dims",
]

# Tried after the table and get_decoder(), for model types the table does not name.
KNOWN_PATHS: tuple[str, ...] = (
    "model.language_model.layers",
    "language_model.model.layers",
    "model.text_model.layers",
    "language_model.layers",
    "model.layers",
    "transformer.h",
    "model.decoder.layers",
    "gpt_neox.layers",
    "layers",
    "h",
)
_DECODER_BLOCK_ATTRS = ("layers", "h", "blocks")


@dataclass(frozen=True)
class TextDims:
    """The text decoder's width and depth, from ``config.get_text_config()``."""

    hidden_size: int
    num_layers: int


@dataclass(frozen=True)
class DecoderBlocks:
    """The text decoder's blocks and the dotted path they were found at."""

    path: str
    blocks: nn.ModuleList


def text_dims(model: nn.Module) -> TextDims:
    """Hidden size and block count of ``model``'s text decoder (works on 5.x and 4.51)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "get_text_config"):
        raise ArgumentError(
            f"{type(model).__name__} has no transformers config; l2v_hub.patch needs a "
            "transformers model (a PreTrainedModel)"
        )
    text = config.get_text_config()
    hidden = getattr(text, "hidden_size", None)
    layers = getattr(text, "num_hidden_layers", None)
    if not isinstance(hidden, int) or not isinstance(layers, int):
        raise ArgumentError(
            f"the text config of {type(model).__name__} (model_type "
            f"{getattr(config, 'model_type', None)!r}) has no integer hidden_size / "
            f"num_hidden_layers (got {hidden!r} / {layers!r})"
        )
    return TextDims(hidden, layers)


def _resolve(model: nn.Module, path: str) -> object | None:
    target: object = model
    for part in path.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def _check(found: object, num_layers: int) -> str | None:
    """Why ``found`` is not the block list (None when it is)."""
    if found is None:
        return "missing"
    if not isinstance(found, nn.ModuleList | nn.Sequential):
        return f"a {type(found).__name__}, not a module list"
    if len(found) != num_layers:
        return f"{len(found)} blocks, the text config says {num_layers}"
    return None


def _decoder_candidates(model: nn.Module) -> list[tuple[str, object]]:
    get_decoder = getattr(model, "get_decoder", None)
    if not callable(get_decoder):
        return []
    try:
        decoder = get_decoder()
    except (AttributeError, NotImplementedError, ValueError):
        return []
    if not isinstance(decoder, nn.Module):
        return []
    names = {id(module): name for name, module in model.named_modules()}
    prefix = names.get(id(decoder), "<get_decoder()>")
    return [
        (f"{prefix}.{attr}" if prefix else attr, getattr(decoder, attr, None))
        for attr in _DECODER_BLOCK_ATTRS
    ]


def _is_encoder_decoder(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    if bool(getattr(config, "is_encoder_decoder", False)):
        return True
    text = config.get_text_config() if hasattr(config, "get_text_config") else None
    return bool(getattr(text, "is_encoder_decoder", False))


def _refuse_unsupported(model: nn.Module, layers_path: str | None) -> None:
    """Refuse up front what would otherwise fail, or mis-steer, at the first forward: an
    encoder-decoder model and a query-token model without placeholder tokens (always), a type
    listed in ``REFUSED`` (unless ``layers_path`` is given)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if _is_encoder_decoder(model):
        raise ArgumentError(f"{type(model).__name__} (model_type {model_type!r}) is "
                            f"{ENCODER_DECODER}")
    unplaced = no_placeholders(config)
    if unplaced is not None:  # another block list would not place the query outputs either
        raise ArgumentError(f"{type(model).__name__} (model_type {model_type!r}): {unplaced}")
    reason = REFUSED.get(model_type) if isinstance(model_type, str) else None
    if reason is not None and layers_path is None:
        raise ArgumentError(f"{type(model).__name__} (model_type {model_type!r}): {reason}")
    untested = UNVERIFIED.get(model_type) if isinstance(model_type, str) else None
    if untested is not None and layers_path is None:
        warnings.warn(f"{type(model).__name__} (model_type {model_type!r}): {untested}", stacklevel=4)


def find_blocks(model: nn.Module, layers_path: str | None = None) -> DecoderBlocks:
    """The text decoder's block list, or ``L2VHubError`` listing every place that was tried."""
    _refuse_unsupported(model, layers_path)
    num_layers = text_dims(model).num_layers
    if layers_path is not None:
        if not isinstance(layers_path, str) or not layers_path:
            raise ArgumentError(f"layers_path must be a dotted attribute path, got {layers_path!r}")
        found = _resolve(model, layers_path)
        problem = _check(found, num_layers)
        if problem:
            raise ArgumentError(f"layers_path={layers_path!r} on {type(model).__name__}: {problem}")
        return DecoderBlocks(layers_path, found)  # type: ignore[arg-type]
    model_type = getattr(model.config, "model_type", None)
    candidates = [(p, _resolve(model, p)) for p in BLOCK_PATHS.get(model_type, ())]
    candidates += _decoder_candidates(model)
    candidates += [(p, _resolve(model, p)) for p in KNOWN_PATHS]
    tried: list[str] = []
    for path, found in candidates:
        if any(t.startswith(path + " (") for t in tried):
            continue
        problem = _check(found, num_layers)
        if problem is None:
            return DecoderBlocks(path, found)  # type: ignore[arg-type]
        tried.append(f"{path} ({problem})")
    raise L2VHubError(
        f"cannot find the text decoder blocks of {type(model).__name__} (model_type "
        f"{model_type!r}, {num_layers} text blocks). Tried: " + "; ".join(tried) + ". Pass the "
        "dotted path of the block list, e.g. l2v_hub.patch(model, pack, "
        "layers_path='model.language_model.layers'), and see docs/loader.md to add the type."
    )
