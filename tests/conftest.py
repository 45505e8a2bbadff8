"""Shared fixtures: small valid packs built from random unit directions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hub_fixtures import hub  # noqa: F401  (the test Hub fixture, see tests/hub_fixtures.py)

from l2v_hub import Defaults, Method, ModelRef, Pack, PairsInfo
from l2v_hub.calibration_record import Calibration, GridPoint, Measures
from l2v_hub.metadata import Scale


def random_pack(
    hidden_size: int = 48,
    num_layers: int = 6,
    *,
    target_id: str = "tiny/vlm",
    model_type: str = "qwen2_vl",
    seed: int = 0,
    version: str = "1.0.0",
    scale: float | None = 1.0,
) -> Pack:
    """A valid pack whose directions are random unit vectors (seeded), with every s_i = ``scale``
    stored in the pack (``scale=None``: uncalibrated, s_i measured at patch time)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(num_layers, hidden_size, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    return Pack(
        name="tiny-pack",
        version=version,
        source=ModelRef("tiny/llm", 32, 4, "llama", revision="0" * 40),
        target=ModelRef(target_id, hidden_size, num_layers, model_type),
        method=Method(
            extraction="mean-diff",
            pairs=PairsInfo("builtin", 200, hashlib.sha256(b"pairs").hexdigest()),
            lowpass_keep=8,
        ),
        directions=d,
        defaults=Defaults(strength=0.1, layers=(num_layers // 2,)),
        scale=Scale("token_spread", None if scale is None else (float(scale),) * num_layers),
        stats={"layers": [{"norm": 1.0}] * 4},
    )


def calibration_record(pack: Pack, model_id: str = "tiny/vlm") -> Calibration:
    """A valid, hand-written calibration record for ``pack`` (what ``l2v_hub.calibrate`` writes),
    for the tests of the format; tests/test_calibrate.py checks real ones."""
    sha = hashlib.sha256(b"x").hexdigest()
    return Calibration(
        model_id=model_id, revision="0" * 40, dtype="float32", device="cpu", l2v_hub_version="0.0.0",
        created="2026-01-01T00:00:00Z", scale_measure="cot_norm", budget=0.1, text_sha256=sha,
        problems={"source": "given", "count": 3, "sha256": sha},
        pairs={"source": "builtin[:3]", "count": 3, "sha256": sha},
        grid=(GridPoint(0.25, "generated", 10.0), GridPoint(0.5, "generated", 12.5)),
        strength=0.25, positions="generated", reason="the largest grid strength within +10%",
        baseline=Measures(10.0, 0.5, 0.0, 12.0), pack=Measures(10.5, 0.5, 1 / 3, 20.0),
        control=Measures(10.4, None, None, None), control_seed=0,
        cosine_own={str(i): 0.5 for i in pack.defaults.layers},
    )


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real ~/.config/l2v-hub/registry.json, nor inherits an opt-in."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("L2V_HUB_ALLOW_DISCOVERY", raising=False)


@pytest.fixture
def pack() -> Pack:
    return random_pack()


@pytest.fixture
def hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub in offline mode with an empty cache of its own (HF_HOME under tmp_path).

    huggingface_hub reads its environment once, at import, so its constants are patched too.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    for name, value in {"HF_HOME": home, "HF_HUB_CACHE": home / "hub"}.items():
        monkeypatch.setenv(name, str(value))
        monkeypatch.setattr(constants, name, str(value))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("L2V_HUB_REGISTRY", raising=False)
    monkeypatch.delenv("L2V_HUB_STORE", raising=False)
    return home
