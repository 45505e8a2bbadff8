"""Wall time of ``l2v_hub.patch()`` on a Qwen2-VL-7B-shaped model, from a warm cache.

The model has Qwen2-VL-7B's text decoder shape (28 blocks, hidden size 3584, its attention and
vocabulary) with 16-wide FFNs and a 1-block vision tower, built on the ``meta`` device: patch()
reads the config, finds the blocks and registers hooks, never the weights, so their values do
not matter. The pack (28 x 3584 directions, calibrated) is a local pack folder, as a pulled pack
sits in the cache: patch() verifies it file by file (sha256, shapes) each time. Also timed: a
``Pack`` object already in memory. Each figure is the median of ``--runs`` patch + remove cycles
after one warm-up; the machine is shared, so the minimum is printed too.

    .venv/bin/python benchmarks/bench_patch.py --runs 21
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import transformers

import l2v_hub
from l2v_hub import Defaults, Method, ModelRef, Pack, PairsInfo
from l2v_hub.metadata import Scale

MODEL_ID = "Qwen/Qwen2-VL-7B-Instruct"
HIDDEN, LAYERS = 3584, 28


def qwen2_vl_7b_shaped() -> torch.nn.Module:
    config = transformers.Qwen2VLConfig(
        vocab_size=152064, hidden_size=HIDDEN, intermediate_size=16, num_hidden_layers=LAYERS,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
        vision_config=dict(depth=1, embed_dim=64, hidden_size=HIDDEN, num_heads=2, mlp_ratio=2),
    )
    config._name_or_path = MODEL_ID
    with torch.device("meta"):
        return transformers.AutoModelForImageTextToText.from_config(config).eval()


def bench_pack() -> Pack:
    directions = torch.nn.functional.normalize(
        torch.randn(LAYERS, HIDDEN, generator=torch.Generator().manual_seed(0)), dim=-1)
    return Pack(
        name="bench-patch", version="1.0.0",
        source=ModelRef("bench/source", 1536, 28, "qwen2"),
        target=ModelRef(MODEL_ID, HIDDEN, LAYERS, "qwen2_vl"),
        method=Method(extraction="mean-diff", lowpass_keep=8, pairs=PairsInfo(
            "random", 1, hashlib.sha256(b"bench").hexdigest())),
        directions=directions,
        defaults=Defaults(strength=0.2, layers=tuple(range(LAYERS))),
        scale=Scale("token_spread", (1.0,) * LAYERS),
        stats={"layers": [{"norm": 1.0}] * LAYERS},
    )


def median_ms(model: torch.nn.Module, pack: Pack | Path, runs: int) -> tuple[float, float]:
    l2v_hub.patch(model, pack).remove()  # warm-up: imports, first allocations
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        handle = l2v_hub.patch(model, pack)
        times.append(time.perf_counter() - start)
        handle.remove()
    return 1e3 * statistics.median(times), 1e3 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model, pack = qwen2_vl_7b_shaped(), bench_pack()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{platform.machine()}, {torch.get_num_threads()} threads; {LAYERS} blocks x {HIDDEN}, "
          f"all {LAYERS} steered, median of {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pack"
        pack.save_pretrained(folder)
        for label, given in (("pack folder (verified)", folder), ("Pack in memory", pack)):
            med, low = median_ms(model, given, args.runs)
            print(f"patch() from a {label:24s} median {med:6.1f} ms   min {low:6.1f} ms")


if __name__ == "__main__":
    main()
