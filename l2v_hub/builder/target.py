"""The target model as the builder needs it: an id, the text decoder's width and depth, a type.

Read from a Hub id or a local folder through ``AutoConfig`` (the config only, never weights), or
given explicitly as a ``TargetSpec`` when no config is at hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildError, PackError, quote
from ..metadata import ModelRef, check_model_id

__all__ = ["TargetSpec", "model_ref_from_config", "read_target", "resolve_model_id"]


@dataclass(frozen=True)
class TargetSpec:
    """A target model given by hand: its Hub id and its text decoder's size and block count."""

    model_id: str
    hidden_size: int
    num_layers: int
    model_type: str
    revision: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.model_id, "TargetSpec.model_id")
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "hidden_size" else 1):
                raise BuildError(f"TargetSpec.{name} must be a positive int, got {value!r}")
        if not isinstance(self.model_type, str) or not self.model_type:
            raise BuildError(f"TargetSpec.model_type must be a non-empty string, got {self.model_type!r}")

    def to_model_ref(self) -> ModelRef:
        return ModelRef(self.model_id, self.hidden_size, self.num_layers, self.model_type, self.revision)


def _check_id(value: str, where: str) -> str:
    try:
        return check_model_id(value, where)
    except PackError as exc:
        raise BuildError(str(exc)) from None


def _saved_name(folder: Path) -> str | None:
    """``_name_or_path`` as written in the folder's config.json (AutoConfig overwrites it)."""
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("_name_or_path") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


def model_ref_from_config(config: Any, model_id: str, revision: str | None = None) -> ModelRef:
    """A ``ModelRef`` from a transformers config: the text decoder's width and block count."""
    text = config.get_text_config()
    hidden, layers = getattr(text, "hidden_size", None), getattr(text, "num_hidden_layers", None)
    if not isinstance(hidden, int) or not isinstance(layers, int):
        raise BuildError(
            f"config of '{model_id}' has no text decoder hidden_size/num_hidden_layers "
            f"(model_type {getattr(config, 'model_type', None)!r})"
        )
    return ModelRef(_check_id(model_id, "model_id"), hidden, layers, str(config.model_type), revision)


def resolve_model_id(id_or_path: str | Path, model_id: str | None, what: str) -> str:
    """The Hub id to record for a model loaded from ``id_or_path``; never a local path.

    For a local folder the id is ``model_id``, or the folder's saved ``_name_or_path`` when that
    is a Hub id; otherwise ``BuildError`` asks for it.
    """
    if model_id is not None:
        return _check_id(model_id, f"{what} model_id")
    path = Path(id_or_path)
    api = "source_id" if what == "llm" else "target_id"
    if not path.exists():
        try:
            return check_model_id(str(id_or_path))
        except PackError:
            raise BuildError(
                f"{what} '{id_or_path}' is neither a Hub id like 'org/name' nor an existing path; "
                f"to record another id pass --{what}-id, or {api}= in Python"
            ) from None
    saved = _saved_name(path if path.is_dir() else path.parent)
    if saved is not None and not Path(saved).exists():
        try:
            return check_model_id(saved)
        except PackError:
            pass
    raise BuildError(
        f"{what} '{id_or_path}' is a local path: give the Hub id it stands for "
        f"(--{what}-id org/name, or {api}= in Python); a pack never records a local path"
    )


def read_target(
    target: str | Path | TargetSpec | ModelRef,
    *,
    model_id: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> ModelRef:
    """The target's ``ModelRef`` from a ``TargetSpec``, a Hub id, or a local folder's config."""
    if isinstance(target, TargetSpec):
        return target.to_model_ref()
    if isinstance(target, ModelRef):
        return target
    from transformers import AutoConfig

    path = Path(target)
    if path.exists() and not (path / "config.json").is_file():
        raise BuildError(f"target folder '{target}' has no config.json")
    recorded = resolve_model_id(target, model_id, "target")
    try:
        config = AutoConfig.from_pretrained(
            str(target), revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(f"cannot read the config of target '{target}': {quote(exc)}") from None
    commit = revision or getattr(config, "_commit_hash", None)
    return model_ref_from_config(config, recorded, None if path.exists() else commit)
