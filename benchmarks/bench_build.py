"""Build cost on the real SmolLM2-135M-Instruct: l2v-hub's build against the bare forward passes
over the same batches, and against repeng's ControlVector.train on the same pairs.

    make bench            # or: .venv-bench/bin/python benchmarks/bench_build.py [--runs 3]

Each job runs in a fresh subprocess (so one job's memory cannot inflate the next one's peak), and
the jobs are interleaved round after round (a slow spell of a shared machine then hits all three
alike); the median of the rounds is reported. Peak memory is the subprocess's RSS sampled every
5 ms during the job; the RSS right after loading the model is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
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
REPO_CACHE = ROOT / ".cache" / "l2v_hub"

from l2v_hub import TargetSpec, build_pack, load_llm  # noqa: E402
from l2v_hub.builder.extract import make_batches, run_forward  # noqa: E402
from l2v_hub.builder.pairs import PairSet, builtin_pairs, render_pair, tokenize_pairs  # noqa: E402
from l2v_hub.demo import smollm2_gguf  # noqa: E402

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


JOBS = ("l2v-hub build", "bare forward passes", "repeng ControlVector.train")


def run_job(name: str, batch_size: int, threads: int, count: int | None) -> dict[str, Any]:
    """Load the model, warm up on one batch, then time one job; runs inside the subprocess."""
    torch.set_num_threads(threads)
    model, tok = load_llm(smollm2_gguf(), cache_dir=REPO_CACHE)
    pairs = builtin_pairs()
    if count is not None:
        pairs = PairSet(f"builtin[:{count}]", pairs.style, pairs.pairs[:count])
    tokens = tokenize_pairs(pairs, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batches = make_batches(tokens, batch_size, pad_token_id=pad, padding_side=tok.padding_side)
    with torch.inference_mode():
        run_forward(model, batches[0])  # warm-up: first-call allocations and kernel selection
    loaded = psutil.Process().memory_info().rss
    out: dict[str, Any] = {"rss_after_load_mib": round(loaded / 2**20),
                           "tokens": sum(len(c) + len(d) for c, d in tokens), "batches": len(batches),
                           "pairs": len(pairs)}
    if name == "l2v-hub build":
        def job() -> None:
            pack = build_pack(model, tok, TARGET, pairs, source_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                              batch_size=batch_size, progress=False)
            stats = pack.stats
            out["stats_at_default_source_blocks"] = [
                r for r in stats["layers"] if r["block"] in stats["default_source_blocks"]]
            out["pack"] = str(pack.save_pretrained(ROOT / ".cache" / "bench" / "smollm2-for-qwen2-vl-2b"))
    elif name == "bare forward passes":
        @torch.inference_mode()
        def job() -> None:
            for batch in batches:
                run_forward(model, batch)
    else:
        from repeng import ControlVector, DatasetEntry

        dataset = [DatasetEntry(*render_pair(p, pairs.style, tok)) for p in pairs.pairs]

        def job() -> None:
            ControlVector.train(model, tok, dataset, batch_size=batch_size, method="pca_diff")

    seconds, peak = timed(job)
    return {**out, "seconds": seconds, "peak_rss_mib": round(peak / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-repeng", action="store_true")
    parser.add_argument("--pairs", type=int, help="use only the first N builtin pairs")
    parser.add_argument("--job", choices=JOBS, help=argparse.SUPPRESS)  # the subprocess side
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_job(args.job, args.batch_size, args.threads, args.pairs)))
        return

    jobs = [j for j in JOBS if not (args.skip_repeng and j.startswith("repeng"))]
    results: dict[str, list[dict[str, Any]]] = {j: [] for j in jobs}
    notes = []
    for round_ in range(args.runs):
        for name in list(jobs):
            cmd = [sys.executable, __file__, "--job", name, "--batch-size", str(args.batch_size),
                   "--threads", str(args.threads), *(["--pairs", str(args.pairs)] if args.pairs else [])]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                notes.append(f"{name} failed: {done.stderr.strip().splitlines()[-1][:300]}")
                jobs.remove(name)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[name].append(result)
            print(f"round {round_ + 1}: {name}: {result['seconds']:.2f} s, peak RSS "
                  f"{result['peak_rss_mib']} MiB (after load {result['rss_after_load_mib']} MiB)", flush=True)

    first = next(iter(r[0] for r in results.values() if r))
    medians = {k: round(statistics.median(x["seconds"] for x in v), 2) for k, v in results.items() if v}
    summary: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch threads, torch {torch.__version__}",
        "inputs": f"{first['pairs']} builtin pairs = {2 * first['pairs']} texts, {first['tokens']} tokens, "
                  f"{first['batches']} batches of {args.batch_size}",
        "runs": args.runs,
        "seconds_all_runs": {k: [round(x["seconds"], 2) for x in v] for k, v in results.items()},
        "median_s": medians,
        "peak_rss_mib": {k: max(x["peak_rss_mib"] for x in v) for k, v in results.items() if v},
        "rss_after_load_mib": {k: max(x["rss_after_load_mib"] for x in v) for k, v in results.items() if v},
    }
    if "l2v-hub build" in medians and "bare forward passes" in medians:
        summary["build_over_bare"] = round(medians["l2v-hub build"] / medians["bare forward passes"], 3)
    if "repeng ControlVector.train" in medians and "l2v-hub build" in medians:
        summary["repeng_over_build"] = round(medians["repeng ControlVector.train"] / medians["l2v-hub build"], 2)
    if results.get("l2v-hub build"):
        last = results["l2v-hub build"][-1]
        summary["stats_at_default_source_blocks"] = last["stats_at_default_source_blocks"]
        summary["pack"] = last["pack"]
    if notes:
        summary["notes"] = notes
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
