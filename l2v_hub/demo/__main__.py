"""``make demo``: the largest end-to-end path the project has, narrated.

Run with ``python -m l2v_hub.demo [OUT_DIR]``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

from . import spectral
from .metadata import Defaults, Method, ModelRef, PairsInfo
from .pack import Pack

__all__ = ["run"]


def run(out: Path) -> Path:
    """Encode synthetic source directions for a target of another size, save, verify, reload."""
    start = time.perf_counter()
    source, target = ModelRef("HuggingFaceTB/SmolLM2-135M-Instruct", 576, 30, "llama"), ModelRef(
        "google/gemma-3-270m", 640, 18, "gemma3_text"
    )
    print(f"1. synthetic CoT directions for {source.model_id}: {source.num_layers} x {source.hidden_size}")
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(source.num_layers, source.hidden_size, generator=g)
    keep = 48
    print(
        f"2. encode for {target.model_id}: low-pass {keep} bins, Fourier resample "
        f"{source.hidden_size} -> {target.hidden_size}, map {source.num_layers} -> "
        f"{target.num_layers} blocks by relative depth"
    )
    encoded = spectral.encode(raw, target.hidden_size, keep)
    rows = [spectral.blend(encoded, pos) for pos in spectral.layer_map(source.num_layers, target.num_layers)]
    directions = torch.stack([r / r.norm() for r in rows])
    pack = Pack(
        name="demo-synthetic",
        version="0.0.1",
        source=source,
        target=target,
        method=Method("mean-diff", PairsInfo("synthetic", 1, hashlib.sha256(b"demo").hexdigest()), keep),
        directions=directions,
        defaults=Defaults(strength=0.1, layers=(8, 9)),
    )
    folder = pack.save_pretrained(out)
    print(f"3. saved the pack to {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")
    loaded = Pack.from_pretrained(folder)
    assert loaded == pack
    print("4. reloaded it: every file's size and sha256 verified, tensors equal to what was saved")
    print(f"done in {time.perf_counter() - start:.2f} s; try: l2v-hub inspect {folder}")
    return folder


if __name__ == "__main__":
    run(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/demo/pack"))
