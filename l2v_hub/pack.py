"""A pack: per-block steering directions for one target model, with metadata that says exactly
how to apply them. Format v2 is specified in docs/pack-format.md (v1 packs are read, so that the
loader can refuse them with the way to convert them).

Only JSON and safetensors are ever read; every file is checked against the size and sha256 that
``pack.json`` records before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from ._hubhook import hub_backend  # not l2v_hub.hub: that imports this module (see _hubhook.py)
from ._version import __version__
from .calibration_record import Calibration, parse_calibration
from .card import render_card
from .errors import PackError, quote
from .files import atomic_write, dump_json, load_json, read_file
from .metadata import (
    SCHEMA_VERSION,
    Defaults,
    Hook,
    Method,
    ModelRef,
    Scale,
    check_model_id,
    parse_metadata,
    to_json_dict,
)

__all__ = ["DIRECTIONS_FILE", "METADATA_FILE", "STATS_FILE", "Pack", "PathLike"]

PathLike = str | os.PathLike[str]
METADATA_FILE = "pack.json"
DIRECTIONS_FILE = "directions.safetensors"
STATS_FILE = "stats.json"
CARD_FILE = "README.md"
_UNIT_TOL = 1e-4


def _utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(eq=False)
class Pack:
    """Steering directions for every text-decoder block of ``target``, plus their provenance.

    ``directions[i]`` is the unit direction v_i for block ``i`` (0-based), ``scale`` its s_i
    (target units); the loader adds the push ``lambda * s_i * v_i`` to the block's output as
    ``hook`` says, at lambda = ``defaults.strength`` on ``defaults.layers`` unless overridden.
    ``calibration`` records what was measured on the target (None: not calibrated).
    ``schema_version`` 1 marks a legacy pack (relative push, no scale): read, never applied.
    """

    name: str
    version: str
    source: ModelRef
    target: ModelRef
    method: Method
    directions: torch.Tensor
    defaults: Defaults
    hook: Hook = field(default_factory=Hook)
    scale: Scale | None = field(default_factory=lambda: Scale("token_spread"))
    calibration: Calibration | None = None
    stats: dict[str, Any] | None = None
    created: str = field(default_factory=_utc_now)
    l2v_hub_version: str = __version__
    schema_version: int = SCHEMA_VERSION

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pack):
            return NotImplemented
        return self.metadata() == other.metadata() and (
            self.stats == other.stats and torch.equal(self.directions, other.directions)
        )

    def metadata(self) -> dict[str, Any]:
        """``pack.json`` without ``files`` (which depends on the serialized bytes)."""
        data = {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "l2v_hub_version": self.l2v_hub_version,
            "source": to_json_dict(self.source),
            "target": to_json_dict(self.target),
            "method": to_json_dict(self.method),
            "hook": to_json_dict(self.hook),
            "defaults": to_json_dict(self.defaults),
        }
        if self.scale is not None:
            data["scale"] = to_json_dict(self.scale)
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_json()
        return data

    def with_version(self, version: str) -> Pack:
        """A copy of this pack under another version (checked on save)."""
        return replace(self, version=version)

    def validate(self) -> Pack:
        """Check the metadata and the directions against each other; return ``self``.

        Raises ``PackError`` naming the field at fault.
        """
        parse_metadata({**self.metadata(), "files": {}})
        if (self.scale is None) != (self.schema_version < 2):
            raise PackError(f"pack.json: format v{self.schema_version} "
                            + ("needs 'scale'" if self.scale is None else "has no 'scale'"))
        if self.calibration is not None:
            parse_calibration(self.calibration.to_json())
            # A calibrated pack stores the s_i it was calibrated with: the card and inspect
            # present its defaults as measured, so they must not rest on patch-time s_i.
            if self.scale is None or self.scale.values is None:
                raise PackError("pack.json: 'calibration' needs 'scale.values' (the s_i it measured)")
            if self.scale.measure != self.calibration.scale_measure:
                raise PackError(
                    f"pack.json: 'scale.measure' is {self.scale.measure!r}, but "
                    f"'calibration.scale_measure' is {self.calibration.scale_measure!r}"
                )
        d, t = self.directions, self.target
        if not isinstance(d, torch.Tensor) or d.dtype != torch.float32:
            raise PackError(f"{DIRECTIONS_FILE}: directions must be a float32 tensor")
        if tuple(d.shape) != (t.num_layers, t.hidden_size):
            raise PackError(
                f"{DIRECTIONS_FILE}: directions have shape {tuple(d.shape)}, but pack.json says "
                f"target.num_layers={t.num_layers} and target.hidden_size={t.hidden_size}"
            )
        for i, row in enumerate(d):
            if not bool(torch.isfinite(row).all()):
                raise PackError(f"{DIRECTIONS_FILE}: 'layers.{i}' holds NaN or inf")
            norm = float(torch.linalg.vector_norm(row.double()))
            if not math.isclose(norm, 1.0, abs_tol=_UNIT_TOL):
                raise PackError(f"{DIRECTIONS_FILE}: 'layers.{i}' must have unit norm, has {norm:.6g}")
        bad = [i for i in self.defaults.layers if not 0 <= i < t.num_layers]
        if bad:
            raise PackError(
                f"pack.json: 'defaults.layers' has {bad}, outside [0, {t.num_layers - 1}]"
            )
        return self

    # -- writing --------------------------------------------------------------------------------

    def _payloads(self) -> dict[str, bytes]:
        tensors = {f"layers.{i}": row.contiguous() for i, row in enumerate(self.directions)}
        meta = {"format": "pt", "l2v_hub_schema_version": str(self.schema_version)}
        files = {DIRECTIONS_FILE: _sorted_metadata(save_safetensors(tensors, metadata=meta))}
        if self.stats is not None:
            files[STATS_FILE] = dump_json(self.stats)
        files[CARD_FILE] = render_card(self).encode()
        return files

    def save_pretrained(self, path: PathLike) -> Path:
        """Write the pack folder; ``pack.json`` is written last, so a crash leaves no valid pack."""
        self.validate()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        payloads = self._payloads()
        files = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in payloads.items()
        }
        payloads[METADATA_FILE] = dump_json({**self.metadata(), "files": files})
        for name, data in payloads.items():
            atomic_write(folder / name, data)
        return folder

    def to_control_vector(self, path: PathLike, *, strength: float | None = None,
                          layers: int | list[int] | tuple[int, ...] | None = None,
                          model: Any = None, tokenizer: Any = None) -> Any:
        """Write this pack as a llama.cpp control-vector GGUF (``--control-vector FILE``).

        llama.cpp adds the vector at every position with no norm preservation: the file equals
        this pack under ``op="add"``, ``positions="all"``. Returns the
        ``l2v_hub.interop.ExportReport``; see ``l2v_hub.interop.export_control_vector``.
        """
        from .interop import export_control_vector  # one-way: interop imports pack

        return export_control_vector(self, path, strength=strength, layers=layers, model=model,
                                     tokenizer=tokenizer)

    # -- reading --------------------------------------------------------------------------------

    def push_to_hub(
        self, repo_id: str, *, version: str | None = None, private: bool = False,
        token: str | None = None, create_pr: bool = False,
    ) -> Any:
        """Publish this pack to the Hub as ``v{version}`` (default: its own version), in one commit.

        Returns the ``l2v_hub.hub.Release``. Versions are immutable: another content under a
        published version raises ``HubError``. See ``l2v_hub.hub.publish``.
        """
        return hub_backend().publish(
            self, repo_id, version=version, private=private, token=token, create_pr=create_pr
        )

    @classmethod
    def from_pretrained(cls, path: PathLike, *, revision: str | None = None, token: str | None = None) -> Pack:
        """Load and fully verify a pack folder, or a pack repo ``org/name`` from the Hub.

        A Hub pull takes ``revision``: None (the highest version tag), ``"v1.2.0"`` or a commit
        sha. Raises ``PackError`` on any problem, ``PackNotFoundError`` when nothing is there.
        """
        folder = Path(path)
        if not folder.is_dir() and _is_repo_id(os.fspath(path)):
            return hub_backend().pull(os.fspath(path), revision, token=token)
        if revision is not None:
            raise PackError(f"revision={revision!r} applies to Hub repos, and '{folder}' is a local folder")
        if not folder.is_dir():
            raise PackError(f"no pack folder at '{folder}' (expected a folder holding pack.json)")
        meta = parse_metadata(load_json(read_file(folder, METADATA_FILE, None), METADATA_FILE))
        if DIRECTIONS_FILE not in meta["files"]:
            raise PackError(f"pack.json: 'files' does not list '{DIRECTIONS_FILE}'")
        data = {name: read_file(folder, name, entry) for name, entry in meta["files"].items()}
        stats = load_json(data[STATS_FILE], STATS_FILE) if STATS_FILE in data else None
        if stats is not None and not isinstance(stats, dict):
            raise PackError(f"{STATS_FILE}: must hold a JSON object")
        meta.pop("files")
        if meta["calibration"] is not None:
            meta["calibration"] = parse_calibration(meta["calibration"])
        pack = cls(
            directions=_parse_directions(data[DIRECTIONS_FILE], meta["target"]),
            stats=stats,
            **meta,
        )
        return pack.validate()


def _is_repo_id(name: str) -> bool:
    """``org/name`` that is a Hub repo id (``check_model_id``), so not a local path."""
    try:
        return name.count("/") == 1 and bool(check_model_id(name))
    except PackError:
        return False


def _sorted_metadata(data: bytes) -> bytes:
    """safetensors writes ``__metadata__`` from a hash map, in a random order: sort it, so that a
    pack always serializes to the same bytes (stable hashes; publishing it again is a no-op)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    return data if len(text) > size else data[:8] + text.ljust(size) + data[8 + size :]


def _parse_directions(data: bytes, target: ModelRef) -> torch.Tensor:
    try:
        tensors = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own error types for every malformed header
        raise PackError(f"{DIRECTIONS_FILE}: not a valid safetensors file ({quote(exc)})") from None
    expected = {f"layers.{i}" for i in range(target.num_layers)}
    if set(tensors) != expected:
        missing = sorted(expected - set(tensors), key=len)[:3]
        extra = sorted(set(tensors) - expected)[:3]
        raise PackError(
            f"{DIRECTIONS_FILE}: tensor keys must be layers.0..layers.{target.num_layers - 1} "
            f"(target.num_layers); missing {missing}, unexpected {extra}"
        )
    rows = []
    for i in range(target.num_layers):
        t = tensors[f"layers.{i}"]
        if t.dtype != torch.float32 or tuple(t.shape) != (target.hidden_size,):
            raise PackError(
                f"{DIRECTIONS_FILE}: 'layers.{i}' must be float32 of shape [{target.hidden_size}] "
                f"(target.hidden_size), got {str(t.dtype).removeprefix('torch.')} "
                f"{list(t.shape)}"
            )
        rows.append(t)
    return torch.stack(rows)
