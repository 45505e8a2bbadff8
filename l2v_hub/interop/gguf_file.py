"""The llama.cpp control-vector GGUF file, read and written with the ``gguf`` package.

The format is what llama.cpp's ``common_control_vector_load`` reads and what its
``llama-cvector-generator`` and repeng's ``ControlVector.export_gguf`` write: architecture
``controlvector``, keys ``controlvector.model_hint`` (the model type) and
``controlvector.layer_count`` (the number of direction tensors, as both writers count it), and one
1-D F32 tensor ``direction.N`` per steered block. llama.cpp adds ``direction.N`` to the output of
the model's block ``N``, counted from 0, at every position; it refuses ``direction.0`` and never
steers block 0 (docs/interop.md cites the source).

l2v-hub's own keys (``l2v_hub.*``, and ``general.name`` / ``general.version``) name the pack,
its version and target model; llama.cpp ignores them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import L2VHubError, quote

__all__ = ["ARCH", "ControlVectorFile", "read_control_vector", "write_control_vector"]

ARCH = "controlvector"
_PREFIX = "direction."


@dataclass
class ControlVectorFile:
    """A control vector: ``directions[N]`` is the vector added to block ``N``'s output (F32)."""

    model_hint: str
    directions: dict[int, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)  # every other key of the file
    sha256: str | None = None  # of the file's bytes, when read from a file


def read_control_vector(path: str | os.PathLike[str]) -> ControlVectorFile:
    """Read a control-vector GGUF; raise ``L2VHubError`` naming the file and what is wrong."""
    import gguf

    path = Path(path)
    try:
        data = path.read_bytes()
        reader = gguf.GGUFReader(path)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise L2VHubError(f"{path}: not a readable GGUF file ({quote(exc)})") from None
    fields = {name: f.contents() for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    arch = fields.get("general.architecture")
    if arch != ARCH:
        raise L2VHubError(f"{path}: general.architecture is {arch!r}, expected {ARCH!r} (a "
                          "llama.cpp control vector, as llama-cvector-generator or repeng write it)")
    hint = fields.get(f"{ARCH}.model_hint")
    if not isinstance(hint, str) or not hint:
        raise L2VHubError(f"{path}: missing '{ARCH}.model_hint' (the model type the vector is for)")
    directions: dict[int, np.ndarray] = {}
    for tensor in reader.tensors:
        index = tensor.name.removeprefix(_PREFIX)
        if not tensor.name.startswith(_PREFIX) or not index.isdigit():
            raise L2VHubError(f"{path}: tensor {tensor.name!r} is not named direction.N (N the "
                              "0-based block whose output it is added to)")
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or len(tensor.shape) != 1:
            raise L2VHubError(f"{path}: {tensor.name} must be a 1-D F32 tensor (llama.cpp refuses "
                              f"others), is {tensor.tensor_type.name} of shape {list(tensor.shape)}")
        if int(index) in directions:
            raise L2VHubError(f"{path}: {tensor.name} appears twice")
        directions[int(index)] = np.array(tensor.data, dtype=np.float32, copy=True)
    if not directions:
        raise L2VHubError(f"{path}: holds no direction.N tensor")
    sizes = {v.shape[0] for v in directions.values()}
    if len(sizes) != 1:
        raise L2VHubError(f"{path}: direction tensors have different lengths {sorted(sizes)}")
    return ControlVectorFile(hint, dict(sorted(directions.items())), fields,
                             hashlib.sha256(data).hexdigest())


def _add(writer: Any, key: str, value: Any) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_int64(key, value)
    elif isinstance(value, float):
        writer.add_float64(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list | tuple):
        writer.add_array(key, list(value))
    else:
        raise TypeError(f"GGUF metadata {key!r}: unsupported value {value!r}")


def write_control_vector(path: str | os.PathLike[str], cv: ControlVectorFile) -> Path:
    """Write ``cv`` as a control-vector GGUF at ``path`` (replaced atomically); ``cv.metadata``
    adds keys (``general.*``, ``l2v_hub.*``) after the two llama.cpp ones."""
    import gguf

    path = Path(path)
    bad = [n for n in cv.directions if n < 0]
    if bad:
        raise L2VHubError(f"direction indices must be block indices >= 0, got {bad}")
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    writer = gguf.GGUFWriter(tmp, ARCH)
    try:
        writer.add_string(f"{ARCH}.model_hint", cv.model_hint)
        writer.add_uint32(f"{ARCH}.layer_count", len(cv.directions))
        for key, value in cv.metadata.items():
            _add(writer, key, value)
        for index, vector in sorted(cv.directions.items()):
            array = np.ascontiguousarray(vector, dtype=np.float32)
            if array.ndim != 1 or not np.isfinite(array).all():
                raise L2VHubError(f"direction.{index} must be a finite 1-D vector")
            writer.add_tensor(f"{_PREFIX}{index}", array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
