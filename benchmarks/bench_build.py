"""Build cost on the real SmolLM2-135M-Instruct: l2v-hub's build against the bare forward passes
over the same batches, and against repeng's ControlVector.train on the same pairs.

    make bench            # or: .venv-bench/bin/python benchmarks/bench_build.py [--runs 3]

The three jobs run interleaved, round after round, in one process (a slow spell of a shared
machine then hits all three alike); the median of the rounds is reported. Peak memory is the
process RSS sampled every 5 ms during each job (the model's own memory included).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch

# repeng draws tqdm bars unconditionally; tqdm >= 4.66 reads its defaults from TQDM_* variables.
os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_llm import REPO_CACHE, smollm2_gguf  # noqa: E402

from l2v_hub import TargetSpec, build_pack, load_llm  # noqa: E402
from l2v_hub.builder.extract import make_batches, run_forward  # noqa: E402
from l2v_hub.builder.pairs import builtin_pairs, render_pair, tokenize_pairs  # noqa: E402

TARGET = TargetSpec("Qwen/Qwen2-VL-2B-Instruct", hidden_size=1536, num_layers=28, model_type="qwen2_vl")


class PeakRSS:
    """Highest resident set size seen while the block runs."""

    def __init__(self) -> None:
        self.process, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(job: Callable[[], Any]) -> tuple[float, int]:
    with PeakRSS() as rss:
        start = time.perf_counter()
        job()
        seconds = time.perf_counter() - start
    return seconds, rss.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-repeng", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tok = load_llm(smollm2_gguf(), cache_dir=REPO_CACHE)
    pairs = builtin_pairs()
    tokens = tokenize_pairs(pairs, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batches = make_batches(tokens, args.batch_size, pad_token_id=pad, padding_side=tok.padding_side)
    n_tokens = sum(len(c) + len(d) for c, d in tokens)

    built: list[Any] = []

    def build() -> None:
        built[:] = [build_pack(model, tok, TARGET, pairs, source_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                               batch_size=args.batch_size, progress=False)]

    @torch.inference_mode()
    def bare() -> None:
        for batch in batches:
            run_forward(model, batch)

    jobs: dict[str, Callable[[], None]] = {"l2v-hub build": build, "bare forward passes": bare}
    repeng_note = None
    if not args.skip_repeng:
        try:
            from repeng import ControlVector, DatasetEntry

            texts = [render_pair(p, pairs.style, tok) for p in pairs.pairs]
            dataset = [DatasetEntry(positive=c, negative=d) for c, d in texts]

            def repeng_train() -> None:
                ControlVector.train(model, tok, dataset, batch_size=args.batch_size, method="pca_diff")

            jobs["repeng ControlVector.train"] = repeng_train
        except Exception as exc:  # report why the baseline is missing instead of failing the run
            repeng_note = f"repeng unavailable: {type(exc).__name__}: {exc}"

    bare()  # warm-up: first-call allocations and kernel selection
    results: dict[str, dict[str, list[float]]] = {name: {"s": [], "rss": []} for name in jobs}
    for round_ in range(args.runs):
        for name, job in jobs.items():
            try:
                seconds, peak = timed(job)
            except Exception as exc:
                repeng_note = f"{name} failed: {type(exc).__name__}: {str(exc)[:300]}"
                results.pop(name)
                jobs = {k: v for k, v in jobs.items() if k != name}
                break
            results[name]["s"].append(seconds)
            results[name]["rss"].append(peak / 2**20)
            print(f"round {round_ + 1}: {name}: {seconds:.2f} s, peak RSS {peak / 2**20:.0f} MiB", flush=True)

    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} torch threads, torch {torch.__version__}",
        "inputs": f"{len(pairs)} builtin pairs = {2 * len(pairs)} texts, {n_tokens} tokens, "
                  f"{len(batches)} batches of {args.batch_size}",
        "runs": args.runs,
        "median_s": {k: round(statistics.median(v["s"]), 2) for k, v in results.items() if v["s"]},
        "peak_rss_mib": {k: round(max(v["rss"])) for k, v in results.items() if v["rss"]},
    }
    medians = summary["median_s"]
    summary["build_over_bare"] = round(medians["l2v-hub build"] / medians["bare forward passes"], 3)
    if "repeng ControlVector.train" in medians:
        summary["repeng_over_build"] = round(medians["repeng ControlVector.train"] / medians["l2v-hub build"], 2)
    if repeng_note:
        summary["note"] = repeng_note
    if built:
        stats = built[0].stats
        summary["stats_at_default_source_blocks"] = [
            row for row in stats["layers"] if row["block"] in stats["default_source_blocks"]]
        summary["pack"] = str(built[0].save_pretrained(ROOT / ".cache" / "bench" / "smollm2-for-qwen2-vl-2b"))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
