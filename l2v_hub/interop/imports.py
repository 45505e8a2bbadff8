"""A control vector made elsewhere (a llama.cpp GGUF, or a repeng ``ControlVector``) as a pack.

Vector ``d_N`` for block ``N`` becomes the unit direction ``v_N = d_N / ||d_N||`` and the scale
``s_N = ||d_N||`` (``scale.measure = "imported"``), at default strength 1, ``op="add"``,
``positions="all"``: ``l2v_hub.patch`` then adds what llama.cpp adds. The file's float32 vectors
are kept, exactly, in ``stats.json`` (``import.vectors``), with the file's sha256, so that
exporting the pack at strength 1 gives the file's tensors back bit for bit (a unit direction in
float32 times a scale cannot always round back to the same float32 bits).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ArgumentError
from ..metadata import Defaults, Hook, Method, ModelRef, PairsInfo, Scale, check_model_id
from ..pack import Pack
from .gguf_file import read_control_vector

__all__ = ["IMPORTED_STRENGTH", "import_control_vector"]

IMPORTED_STRENGTH = 1.0


def _from_object(obj: Any) -> tuple[str, dict[int, np.ndarray], str, str]:
    """(model_hint, directions, sha256, origin) of a repeng ``ControlVector``-like object."""
    directions = getattr(obj, "directions", None)
    hint = getattr(obj, "model_type", None)
    if not isinstance(directions, dict) or not isinstance(hint, str):
        raise ArgumentError(f"expected a control-vector GGUF path or a repeng ControlVector (with "
                            f".directions: dict[int, array] and .model_type), got {type(obj).__name__}")
    out: dict[int, np.ndarray] = {}
    for key, value in directions.items():
        if isinstance(key, bool) or not isinstance(key, int | np.integer) or key < 0:
            raise ArgumentError(f"ControlVector.directions key {key!r} must be a block index >= 0 "
                                "(repeng's negative indices count from the end: resolve them first)")
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
        out[int(key)] = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    digest = hashlib.sha256()
    for key in sorted(out):
        digest.update(key.to_bytes(8, "little") + out[key].tobytes())
    return hint, dict(sorted(out.items())), digest.hexdigest(), "repeng ControlVector"


def _name(text: str) -> str:
    return ("imported-" + re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-"))[:256]


def import_control_vector(
    source: str | os.PathLike[str] | Any,
    *,
    model_id: str | None = None,
    num_layers: int | None = None,
    model_type: str | None = None,
    name: str | None = None,
    version: str = "1.0.0",
    revision: str | None = None,
) -> Pack:
    """A v2 pack from a control-vector GGUF file (llama.cpp, repeng, or ``l2v-hub export``) or a
    repeng ``ControlVector`` object, for the target ``model_id``.

    ``num_layers`` is the target's text block count (default: what a file exported by l2v-hub
    records, else the highest direction index + 1, which is right for the vectors
    llama-cvector-generator and repeng make by default: blocks 1..L-1). ``model_type`` defaults to
    the vector's model hint. Blocks the vector does not cover take the direction and scale of the
    nearest covered block (ties: the lower one), so that the pack is complete; its
    ``defaults.layers`` are exactly the covered blocks. A zero vector counts as not covered.
    Raises ``ArgumentError`` or ``L2VHubError`` naming what is wrong.
    """
    if isinstance(source, str | os.PathLike):
        cv = read_control_vector(source)
        hint, directions, sha = cv.model_hint, cv.directions, cv.sha256 or ""
        origin, meta = f"control-vector:{Path(source).name}", cv.metadata
    else:
        hint, directions, sha, origin = _from_object(source)
        meta = {}
    model_id = model_id if model_id is not None else meta.get("l2v_hub.target.model_id")
    if model_id is None:
        raise ArgumentError("model_id is needed: the Hub id of the model the vector steers "
                            "(CLI: --model-id)")
    check_model_id(model_id)
    sizes = {v.shape[0] for v in directions.values()}
    if len(sizes) != 1 or min(sizes) < 2:
        raise ArgumentError(f"the vectors must share one length >= 2, have {sorted(sizes)}")
    hidden = sizes.pop()
    top = max(directions)
    num_layers = num_layers or meta.get("l2v_hub.target.num_layers") or top + 1
    if not isinstance(num_layers, int) or num_layers <= top:
        raise ArgumentError(f"num_layers must be an integer > {top} (the vector has direction.{top}), "
                            f"got {num_layers!r}")
    norms = {i: float(np.linalg.norm(v.astype(np.float64))) for i, v in directions.items()}
    bad = [i for i, v in directions.items() if not np.isfinite(v).all()]
    if bad:
        raise ArgumentError(f"direction.{bad[0]} holds NaN or inf")
    covered = sorted(i for i, n in norms.items() if n > 0)
    if not covered:
        raise ArgumentError("every vector is zero: nothing to import")
    rows, scales = [], []
    for i in range(num_layers):
        near = min(covered, key=lambda j: (abs(j - i), j))
        d = torch.from_numpy(directions[near].astype(np.float64))
        rows.append((d / norms[near]).float())
        scales.append(norms[near])
    target = ModelRef(model_id, hidden, num_layers, model_type or hint, revision)
    stats = {"import": {
        "origin": origin, "sha256": sha, "model_hint": hint, "strength": IMPORTED_STRENGTH,
        "layers": covered, "zero_layers": sorted(set(directions) - set(covered)),
        "filled_from_nearest": [i for i in range(num_layers) if i not in covered],
        "vectors": {str(i): [float(x) for x in directions[i]] for i in covered},
    }}
    pack = Pack(
        name=name or _name(meta.get("general.name") or Path(origin.split(":", 1)[-1]).stem),
        version=version,
        source=target,  # control vectors are read off the model they steer
        target=target,
        method=Method(extraction="imported", token="unknown", lowpass_keep=None, resample="none",
                      layer_map="identity", pairs=PairsInfo(origin, 1, sha)),
        directions=torch.stack(rows),
        defaults=Defaults(strength=IMPORTED_STRENGTH, layers=tuple(covered)),
        hook=Hook(op="add", positions="all"),
        scale=Scale("imported", tuple(scales)),
        stats=stats,
    )
    return pack.validate()
