"""Shared fixtures: small valid packs built from random unit directions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from hub_fixtures import hub  # noqa: F401  (the test Hub fixture, see tests/hub_fixtures.py)

from l2v_hub import Defaults, Method, ModelRef, Pack, PairsInfo


def random_pack(
    hidden_size: int = 48,
    num_layers: int = 6,
    *,
    target_id: str = "tiny/vlm",
    model_type: str = "qwen2_vl",
    seed: int = 0,
    version: str = "1.0.0",
) -> Pack:
    """A valid pack whose directions are random unit vectors (seeded)."""
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
        stats={"layers": [{"norm": 1.0}] * 4},
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
