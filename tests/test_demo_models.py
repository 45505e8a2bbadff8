"""The real-model helpers of l2v_hub.demo.models that need no model: assembling a GGUF from its
PyPI chunk packages, pinned by size and sha256 (the Qwen2.5-Coder files)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from l2v_hub.demo import models
from l2v_hub.errors import L2VHubError


@pytest.fixture
def chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Three chunk "packages" (folders with data/partNN.bin) standing in for an installed set."""
    parts = [b"GGUF" + bytes(range(60)), bytes(range(200, 256)) * 3, b"tail"]
    for i, data in enumerate(parts, 1):
        (tmp_path / "site" / f"fake_part{i}" / "data").mkdir(parents=True)
        (tmp_path / "site" / f"fake_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.setattr(models, "_package_dir", lambda name, pip: tmp_path / "site" / name)
    return b"".join(parts)


def _pin(monkeypatch: pytest.MonkeyPatch, size: int, sha: str) -> None:
    monkeypatch.setitem(models._QWEN_FILES, "0.5b", ("fake-part", "fake_part", 3, size, sha))


def test_chunks_assemble_in_order_into_the_pinned_file(chunks: bytes, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _pin(monkeypatch, len(chunks), hashlib.sha256(chunks).hexdigest())
    path = models.qwen_gguf("0.5b", tmp_path / "cache")
    assert path.read_bytes() == chunks
    assert models.qwen_gguf("0.5b", tmp_path / "cache") == path  # the second call reuses it


def test_a_wrong_sha256_is_refused_and_leaves_no_file(chunks: bytes, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _pin(monkeypatch, len(chunks), "0" * 64)
    with pytest.raises(L2VHubError, match=r"fake-part1\.\.3\) .* expected .* reinstall"):
        models.qwen_gguf("0.5b", tmp_path / "cache")
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_the_pinned_files_are_the_published_sizes() -> None:
    # The sizes the chunk packages were published with (shared/MODELS.md).
    assert models._QWEN_FILES["0.5b"][3] == 491_400_064
    assert models._QWEN_FILES["1.5b"][3] == 1_117_320_768
