"""Which pack a ``pack`` argument names, and whether it fits the model: the checks ``patch`` runs
before the model is touched (``as_pack``, ``check_fit``)."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from torch import nn

from ..errors import ArgumentError, IncompatiblePackError, L2VHubError, PackNotFoundError
from ..hub import identify_model, parse_ref, pull, resolve_pack
from ..metadata import check_model_id
from ..pack import Pack, PathLike
from .layers import text_dims

__all__ = ["as_pack", "check_dims", "check_fit", "model_hub_id"]

logger = logging.getLogger(__name__)


def model_hub_id(model: nn.Module, model_id: str | None = None) -> str | None:
    """The Hub id of ``model``: given, or from ``name_or_path`` (a Hub id or a Hub cache path)."""
    try:
        return identify_model(model, model_id=model_id).model_id
    except PackNotFoundError:  # a plain local folder: the model cannot say which Hub model it is
        return None


def check_dims(model: nn.Module, pack: Pack) -> None:
    """Raise ``IncompatiblePackError`` when the pack's target text dimensions differ from the
    model's (hidden size, number of blocks)."""
    dims, target = text_dims(model), pack.target
    if (dims.hidden_size, dims.num_layers) != (target.hidden_size, target.num_layers):
        raise IncompatiblePackError(
            f"pack {pack.name!r} is for {target.model_id} (text hidden_size={target.hidden_size}, "
            f"num_layers={target.num_layers}), but {type(model).__name__} has text "
            f"hidden_size={dims.hidden_size}, num_layers={dims.num_layers}; the model is untouched"
        )


def check_fit(model: nn.Module, pack: Pack, model_id: str | None, strict: bool) -> None:
    """``check_dims``, then the model's id against the pack's target and calibration: a warning
    (``strict``: ``IncompatiblePackError``) when they differ or the model cannot say its id."""
    check_dims(model, pack)
    target = pack.target
    found = model_hub_id(model, model_id)
    calibrated = pack.calibration.model_id if pack.calibration is not None else None
    if calibrated is not None and (found or "").casefold() != calibrated.casefold():
        # The scale and default strength are in the calibrated model's units.
        logger.warning("pack %r was calibrated on %s, but the model is %s: its s_i and default "
                       "strength were measured there", pack.name, calibrated, found or "unknown")
    if found is not None and found.casefold() == target.model_id.casefold():
        return
    if found is None:
        # A local folder or a model built from a config: any pack of the same shape fits, so the
        # user is told which model the pack was made for (a warning, not an info log).
        message = (f"cannot tell which model this is (no Hub id in name_or_path); pack "
                   f"{pack.name!r} is for {target.model_id}: pass model_id= to check it")
    else:
        message = (f"pack {pack.name!r} was built for {target.model_id} but the model is {found} "
                   "(same text dimensions)")
    if strict:
        raise IncompatiblePackError(message + "; strict=True refuses it, the model is untouched")
    warnings.warn(message + ("; pass strict=True to refuse such a pack" if found else ""),
                  stacklevel=3)


def as_pack(pack: Pack | PathLike | None, model: nn.Module, model_id: str | None = None,
            allow_discovery: bool | None = None) -> Pack:
    """The one place a ``pack`` argument becomes a Pack: a Pack, a local folder, a Hub reference
    ``org/name[@revision]``, or (``None``) the pack the registries name for the model's id (or,
    with ``allow_discovery``, the one Hub discovery finds)."""
    if isinstance(pack, Pack):
        return pack.validate()
    if pack is None:
        return resolve_pack(model, model_id=model_id, allow_discovery=allow_discovery)
    if not isinstance(pack, str | os.PathLike):
        raise ArgumentError(f"pack must be a Pack, a pack folder, 'org/name[@revision]' or None, "
                          f"got {type(pack).__name__}")
    if Path(pack).is_dir() or not _is_hub_ref(pack):
        return Pack.from_pretrained(pack)  # a PackError names a missing or broken folder
    repo_id, revision = parse_ref(os.fspath(pack))
    return pull(repo_id, revision).pack


def _is_hub_ref(value: str | os.PathLike[str]) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return bool(check_model_id(value.partition("@")[0]))
    except L2VHubError:
        return False


