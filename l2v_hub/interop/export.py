"""A pack as a llama.cpp control vector: block ``i``'s push ``lambda * s_i * v_i`` becomes the
tensor ``direction.i`` (llama.cpp adds ``direction.N`` to the output of block ``N``, 0-based).

llama.cpp adds a control vector to every position, with no norm preservation: the file equals the
pack under ``op="add"``, ``positions="all"``, whatever the pack's own ``hook`` says
(docs/interop.md measures how far that is from a pack's defaults).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..errors import ArgumentError, IncompatiblePackError, PackError
from ..loader import check_strength
from ..pack import Pack
from .gguf_file import ControlVectorFile, write_control_vector

__all__ = ["ExportReport", "export_control_vector", "push_vectors", "semantics"]

SEMANTICS = "add at all positions (llama.cpp control vector)"


@dataclass(frozen=True)
class ExportReport:
    """What ``export_control_vector`` wrote: the file, the blocks and strength baked into it, where
    s_i came from (``pack`` or ``measured``), and what the export keeps and loses."""

    path: Path
    layers: tuple[int, ...]
    strength: float
    scale_origin: str
    keeps: tuple[str, ...]
    loses: tuple[str, ...]


def _check(pack: Pack, strength: Any, layers: Any) -> tuple[float, tuple[int, ...]]:
    if pack.schema_version < 2 or pack.scale is None:
        raise PackError(f"pack {pack.name!r} is format v1 (a push relative to each token's norm), "
                        "which no fixed control vector can carry; convert it first: "
                        "l2v-hub calibrate PACK --model TARGET --out DIR")
    lam = check_strength(pack.defaults.strength if strength is None else strength)  # as patch()
    chosen = pack.defaults.layers if layers is None else ([layers] if isinstance(layers, int) else layers)
    chosen = tuple(chosen)
    n = pack.target.num_layers
    if not chosen or not all(isinstance(i, int) and not isinstance(i, bool) for i in chosen):
        raise ArgumentError(f"layers must be a non-empty list of block indices, got {layers!r}")
    outside = [i for i in chosen if not 0 <= i < n]
    if outside:
        raise ArgumentError(f"layers {outside} are outside the target's blocks 0..{n - 1}")
    if 0 in chosen:
        raise ArgumentError(
            "llama.cpp never steers block 0 (it refuses direction.0 and holds no control tensor "
            "for layer 0); choose layers from 1 on" + ("" if layers is not None else
            f" (the pack's defaults.layers are {list(pack.defaults.layers)}; pass layers=)"))
    return float(lam), tuple(sorted(set(chosen)))


def _scales(pack: Pack, model: Any, tokenizer: Any) -> tuple[torch.Tensor, str]:
    assert pack.scale is not None
    if pack.scale.values is not None:
        return torch.tensor(pack.scale.values, dtype=torch.float32), "pack"
    if model is None:
        raise IncompatiblePackError(
            f"pack {pack.name!r} is not calibrated: its s_i ({pack.scale.measure}) is measured on "
            f"the target model at patch time, so the export needs {pack.target.model_id} and its "
            "tokenizer (model=, tokenizer=; CLI: --model), or a calibrated pack (l2v-hub calibrate)")
    from ..loader.layers import text_dims
    from ..loader.scale import measure_scales

    dims = text_dims(model)
    if (dims.hidden_size, dims.num_layers) != (pack.target.hidden_size, pack.target.num_layers):
        raise IncompatiblePackError(
            f"pack {pack.name!r} is for {pack.target.model_id} (hidden_size="
            f"{pack.target.hidden_size}, num_layers={pack.target.num_layers}), but the model has "
            f"hidden_size={dims.hidden_size}, num_layers={dims.num_layers}")
    return measure_scales(model, pack.scale.measure, tokenizer).float().cpu(), "measured"


def _imported(pack: Pack, lam: float) -> dict[int, np.ndarray]:
    """The exact vectors an imported pack keeps (stats ``import.vectors``), at its own strength."""
    record = (pack.stats or {}).get("import")
    if not isinstance(record, dict) or record.get("strength") != lam:
        return {}
    vectors = record.get("vectors")
    return {int(k): np.asarray(v, dtype=np.float32) for k, v in vectors.items()} \
        if isinstance(vectors, dict) else {}


def push_vectors(pack: Pack, strength: float, layers: tuple[int, ...],
                 scales: torch.Tensor) -> dict[int, np.ndarray]:
    """Block -> the float32 push ``strength * s_i * v_i``, computed as ``l2v_hub.patch`` computes
    it (``(v_i * s_i) * strength`` in float32), so the file adds the very vector the loader adds.

    An imported pack gives back the vectors it was imported from, bit for bit, when they still
    agree with its directions and scales (within float32 rounding) at its import strength.
    """
    exact = _imported(pack, strength)
    out = {}
    for i in layers:
        push = ((pack.directions[i].float() * scales[i]) * strength).numpy()
        kept = exact.get(i)
        if kept is not None and kept.shape == push.shape and np.allclose(kept, push, rtol=1e-5,
                                                                          atol=1e-30):
            push = kept
        out[i] = np.ascontiguousarray(push, dtype=np.float32)
    return out


def semantics(pack: Pack) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a control vector keeps of ``pack`` and what it loses, one line each."""
    keeps = ("the push lambda * s_i * v_i of each exported block, as l2v_hub.patch computes it "
             "(float32); direction.N is added to the output of block N, counted from 0, as in the "
             "pack",)
    loses = []
    if pack.hook.op != "add":
        loses.append(f"op {pack.hook.op} -> add: llama.cpp adds the vector and does not keep "
                     "each token's norm")
    if pack.hook.positions != "all":
        loses.append(f"positions {pack.hook.positions} -> all: llama.cpp steers every position, "
                     "the prompt and its first (attention-sink) token included")
    loses.append("block 0 (llama.cpp never steers it), the calibration record and the build "
                 "provenance (the file names only the pack, its version and target)")
    return keeps, tuple(loses)


def export_control_vector(pack: Pack, path: str | os.PathLike[str], *, strength: float | None = None,
                          layers: int | list[int] | tuple[int, ...] | None = None,
                          model: Any = None, tokenizer: Any = None) -> ExportReport:
    """Write ``pack`` as a llama.cpp control-vector GGUF at ``path``.

    ``strength`` (lambda) and ``layers`` default to the pack's ``defaults``; the push of each
    block is baked into the file (llama.cpp's ``--control-vector-scaled FILE:S`` multiplies it
    again by S). A pack that is not calibrated needs its target ``model`` and ``tokenizer`` to
    measure s_i. Raises ``ArgumentError`` for a bad strength or layer, ``PackError`` for a v1
    pack, ``IncompatiblePackError`` when s_i cannot be measured.
    """
    lam, chosen = _check(pack, strength, layers)
    scales, origin = _scales(pack, model, tokenizer)
    target = pack.target
    metadata: dict[str, Any] = {
        "general.name": pack.name,
        "general.version": pack.version,
        "l2v_hub.version": __version__,
        "l2v_hub.pack.name": pack.name,
        "l2v_hub.pack.version": pack.version,
        "l2v_hub.target.model_id": target.model_id,
        "l2v_hub.target.model_type": target.model_type,
        "l2v_hub.target.num_layers": target.num_layers,
        "l2v_hub.target.hidden_size": target.hidden_size,
        "l2v_hub.strength": lam,
        "l2v_hub.layers": list(chosen),
        "l2v_hub.scale.measure": pack.scale.measure if pack.scale else "",
        "l2v_hub.scale.origin": origin,
        "l2v_hub.semantics": SEMANTICS,
        "l2v_hub.pack.op": pack.hook.op,
        "l2v_hub.pack.positions": pack.hook.positions,
    }
    if target.revision is not None:
        metadata["l2v_hub.target.revision"] = target.revision
    cv = ControlVectorFile(target.model_type, push_vectors(pack, lam, chosen, scales), metadata)
    written = write_control_vector(path, cv)
    keeps, loses = semantics(pack)
    return ExportReport(written, chosen, lam, origin, keeps, loses)
