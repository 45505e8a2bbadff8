"""Greedy-decode throughput of a steered model against the same model unpatched, on CPU.

l2v-hub's loader (one block, all blocks) side by side with repeng's ControlModel and
steering-vectors' patch_activations on the same blocks and the same direction, on a random Llama
shaped like SmolLM2-135M. Every variant runs once per round, in a rotating order, for several
rounds; each steered generate call is timed next to an unpatched one (the order alternating), the
ratio is the median of these paired time ratios and tokens/s comes from the median time. A peer
that is missing or fails is reported with its error, never timed.

    make bench                      # in .venv-bench, with both peers (transformers 4.x)
    .venv/bin/python benchmarks/bench_overhead.py --rounds 7   # l2v-hub alone on transformers 5.x
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import transformers

import l2v_hub
from l2v_hub import Defaults, Method, ModelRef, Pack, PairsInfo

STEERED_BLOCK = 15  # the middle of SmolLM2-135M's 30 blocks
STRENGTH = 0.1


def smollm2_shaped_model() -> torch.nn.Module:
    """SmolLM2-135M's architecture (public config) with random weights."""
    config = transformers.LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def bench_pack(hidden: int, layers: int) -> Pack:
    """Random unit directions in a pack for the model above."""
    directions = torch.nn.functional.normalize(
        torch.randn(layers, hidden, generator=torch.Generator().manual_seed(1)), dim=-1)
    return Pack(
        name="bench", version="1.0.0",
        source=ModelRef("bench/source", hidden, layers, "llama"),
        target=ModelRef("bench/smollm2-shaped", hidden, layers, "llama"),
        method=Method(extraction="mean-diff", lowpass_keep=None, pairs=PairsInfo(
            "random", 1, hashlib.sha256(b"bench").hexdigest())),
        directions=directions,
        defaults=Defaults(strength=STRENGTH, layers=(STEERED_BLOCK,)),
    )


Setup = Callable[[], Callable[[], None]]  # applies a variant, returns its undo


def l2v_variant(model: torch.nn.Module, pack: Pack, layers: list[int]) -> Setup:
    def setup() -> Callable[[], None]:
        return l2v_hub.patch(model, pack, layers=layers, strength=STRENGTH).remove

    return setup


def repeng_variant(model: torch.nn.Module, pack: Pack, layers: list[int]) -> Setup:
    from repeng import ControlModel

    def setup() -> Callable[[], None]:
        wrapped = ControlModel(model, layers)
        # normalize=True keeps each state's norm, like l2v-hub's norm_preserving_add.
        wrapped.set_raw_control({i: STRENGTH * pack.directions[i] for i in layers}, normalize=True)
        return wrapped.unwrap

    return setup


def steering_vectors_variant(model: torch.nn.Module, pack: Pack, layers: list[int]) -> Setup:
    from steering_vectors import SteeringVector

    def setup() -> Callable[[], None]:
        vector = SteeringVector({i: pack.directions[i] for i in layers}, "decoder_block")
        return vector.patch_activations(model, multiplier=STRENGTH).remove

    return setup


def timed_generate(model: torch.nn.Module, ids: torch.Tensor, new_tokens: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=2)
    return time.perf_counter() - start


def run(batch: int, args: argparse.Namespace, model: torch.nn.Module,
        variants: dict[str, Setup]) -> dict[str, dict[str, float]]:
    """Each variant is timed right next to an unpatched run (alternating which goes first), so
    its ratio is the median of paired ratios: robust to other load drifting over the run."""
    ids = torch.randint(3, 49152, (batch, args.prompt_tokens),
                        generator=torch.Generator().manual_seed(batch))
    base: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in variants}
    ratios: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)

    def steered_run(name: str) -> float:
        undo = variants[name]()
        try:
            return timed_generate(model, ids, args.new_tokens)
        finally:
            undo()

    for round_ in range(args.rounds + 1):  # round 0 warms up and is not counted
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            if round_ % 2:
                plain, steered = timed_generate(model, ids, args.new_tokens), steered_run(name)
            else:
                steered, plain = steered_run(name), timed_generate(model, ids, args.new_tokens)
            if round_:
                base.append(plain)
                times[name].append(steered)
                ratios[name].append(steered / plain)
    rows = {"unpatched": {"tokens_per_s": batch * args.new_tokens / statistics.median(base),
                          "ratio": 1.0}}
    for name in names:
        rows[name] = {"tokens_per_s": batch * args.new_tokens / statistics.median(times[name]),
                      "ratio": statistics.median(ratios[name])}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: least disturbed by other processes on the CPU)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = smollm2_shaped_model()
    pack = bench_pack(576, 30)
    one, every = [STEERED_BLOCK], list(range(30))
    variants: dict[str, Setup] = {}
    unavailable: dict[str, str] = {}
    for peer, make in [("l2v-hub", l2v_variant), ("repeng", repeng_variant),
                       ("steering-vectors", steering_vectors_variant)]:
        for label, layers in [("1 block", one), ("all blocks", every)]:
            name = f"{peer}, {label}"
            try:
                setup = make(model, pack, layers)
                undo = setup()  # one short run: a peer that cannot run is reported, not timed
                try:
                    timed_generate(model, torch.tensor([[5, 6, 7]]), 2)
                finally:
                    undo()
                variants[name] = setup
            except Exception as exc:  # any failure of a peer is a result to report
                unavailable[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"

    results: dict[str, Any] = {
        "environment": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "settings": vars(args), "unavailable": unavailable, "batches": {},
    }
    for batch in args.batches:
        results["batches"][batch] = run(batch, args, model, variants)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    env = results["environment"]
    print(f"torch {env['torch']}, transformers {env['transformers']}, {env['threads']} threads, "
          f"{args.rounds} rounds, {args.prompt_tokens} prompt + {args.new_tokens} new tokens")
    print("\n| variant | batch | tokens/s (median) | time ratio vs unpatched (median of pairs) |")
    print("|---|---|---|---|")
    for batch, rows in results["batches"].items():
        for name, row in rows.items():
            print(f"| {name} | {batch} | {row['tokens_per_s']:.1f} | {row['ratio']:.3f} |")
    for name, why in unavailable.items():
        print(f"| {name} | - | not run: {why} | - |")


if __name__ == "__main__":
    main()
