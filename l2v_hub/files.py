"""Reading and writing the files of a pack folder safely: names that stay inside it, sizes and
sha256 checked before anything is parsed, strict JSON, atomic writes that follow the umask.
Used by ``l2v_hub.pack`` and by the Hub and registry code.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .errors import PackError, quote

__all__ = ["MAX_JSON_BYTES", "atomic_write", "dump_json", "load_json", "read_file", "safe_path"]

MAX_JSON_BYTES = 64 << 20  # pack.json / stats.json beyond this are refused unread


def dump_json(value: Any) -> bytes:
    """``value`` as indented UTF-8 JSON with a final newline (NaN and infinities refused)."""
    return (json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and a rename: never half a file."""
    # os.open with 0o666 lets the umask decide the mode, as for any other tool (mkstemp's 0600
    # made packs in a shared store unreadable to the other users).
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_path(folder: Path, name: str) -> Path:
    """Resolve ``name`` inside ``folder``; refuse names and links that lead out of it.

    A Hub cache snapshot (``.../snapshots/<sha>/``) links its files into the repo's own
    ``blobs/`` folder, and those may link on into the cache-wide store of Xet-downloaded blobs
    (``<cache>/blobs/``, marked by ``.huggingface-shared-blobs``): the only places outside the
    folder a file may live.
    """
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or ":" in name or any(p in ("", ".", "..") for p in parts):
        raise PackError(f"pack.json: file name {name!r} in 'files' must stay inside the pack folder")
    root = folder.resolve()
    allowed = [root]
    if root.parent.name == "snapshots":
        allowed.append(root.parent.parent / "blobs")
        shared = root.parents[2] / "blobs"
        if (shared / ".huggingface-shared-blobs").is_file():
            allowed.append(shared)
    resolved = (folder / name).resolve()
    if not any(resolved.is_relative_to(base) for base in allowed):
        raise PackError(f"{name}: resolves to '{resolved}', outside the pack folder")
    return resolved


def read_file(folder: Path, name: str, entry: dict[str, Any] | None) -> bytes:
    """The bytes of ``name`` in ``folder``, checked against ``entry`` (``size``, ``sha256``) before
    they are returned; ``entry=None``: a JSON file of at most ``MAX_JSON_BYTES``. ``PackError``
    names the file and what is wrong."""
    path = safe_path(folder, name)
    try:
        size = path.stat().st_size
        expected = size if entry is None else entry["size"]
        if entry is None and size > MAX_JSON_BYTES:
            raise PackError(f"{name}: {size} bytes, more than the {MAX_JSON_BYTES} allowed")
        if size != expected:
            raise PackError(
                f"{name}: size mismatch (pack.json says {expected} bytes, the file has {size}); "
                "the file is truncated or altered"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise PackError(f"{name}: missing from the pack folder '{folder}'") from None
    except OSError as exc:
        raise PackError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    if entry is not None:
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != expected or digest != entry["sha256"]:
            raise PackError(
                f"{name}: sha256 mismatch (pack.json says {entry['sha256']}, the file has "
                f"{digest}); the file was altered or corrupted"
            )
    return data


def load_json(data: bytes, name: str) -> Any:
    """Strict JSON (no NaN / Infinity) from ``data``; ``PackError`` naming ``name`` otherwise."""
    def refuse_constant(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PackError(f"{name}: not valid JSON ({quote(exc)})") from None
