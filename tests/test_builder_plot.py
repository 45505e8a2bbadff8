"""plot_pack: the diagnostics figure, with and without the optional parts of stats."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import random_pack

from l2v_hub import BuildError
from l2v_hub.builder.plot import plot_pack

pytest.importorskip("matplotlib", reason="the 'plot' extra is part of the test extra")

STATS = {
    "lowpass_keep": 8,
    "default_source_blocks": [1, 2],
    "layers": [{"block": b, "norm": 1.0 + b, "separation": 0.9, "dispersion": 2.0} for b in range(4)],
    "spectrum": {"block": 1, "power": [0.5, 0.3, 0.1] + [0.1 / 22] * 22},
    "projection": {"block": 1, "explained_variance": [0.6, 0.2], "cot": [[1, 0], [2, 1]], "direct": [[-1, 0], [-2, 1]]},
}


def _image_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_three_panels_with_a_projection_two_without(tmp_path: Path) -> None:
    pack = replace(random_pack(), stats=STATS)
    wide = _image_size(plot_pack(pack, tmp_path / "full.png"))
    narrow = _image_size(plot_pack(replace(pack, stats={**STATS, "projection": None}), tmp_path / "two.png"))
    assert wide[0] > narrow[0] * 1.3 and wide[1] == narrow[1]


def test_a_pack_without_diagnostics_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no per-block diagnostics"):
        plot_pack(replace(random_pack(), stats=None), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
