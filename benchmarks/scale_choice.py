"""Which s_i makes one strength mean the same on every model? Measures the candidates on real
models and the strength at which each breaks fluency (docs/calibration.md, "Choosing s_i").

    .venv/bin/python benchmarks/scale_choice.py --models smollm2,gemma,qwen0.5b,qwen1.5b

Per model, at every block: ``token_norm`` (median norm of ordinary tokens, the first one left out,
on the neutral text), ``token_spread`` (median distance of ordinary tokens from their mean) and
``cot_norm`` (norm of the model's own CoT mean difference on builtin pairs). Then, on the 3 middle
blocks, ``norm_preserving_add`` at positions ``generated``: for each candidate unit and for two
directions (a seeded random one, the model's own CoT direction), the largest strength of a
geometric grid (factor sqrt 2) before the neutral-text perplexity first exceeds +10% of
unpatched: lambda*. The unit whose lambda* varies least across models (the spread of
log2 lambda*) is the one in which one strength means the same everywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import l2v_hub
from l2v_hub import Defaults, Hook, Method, Pack, PairsInfo
from l2v_hub.builder import builtin_pairs, default_layers, extract
from l2v_hub.builder.pairs import PairSet, tokenize_pairs
from l2v_hub.builder.target import model_ref_from_config
from l2v_hub.demo import models as real
from l2v_hub.loader.scale import block_outputs, token_measures
from l2v_hub.measure import neutral_text, perplexity, random_directions
from l2v_hub.metadata import Scale

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {"smollm2": real.load_smollm2, "gemma": real.load_gemma,
           "qwen0.5b": real.load_qwen_05b, "qwen1.5b": real.load_qwen_15b}
UNITS = ("token_norm", "token_spread", "cot_norm")
GRID = [2 ** (k / 2) for k in range(-14, 9)]  # 1/128 .. 16


def _pack(model: Any, directions: torch.Tensor, scales: torch.Tensor, layers: tuple[int, ...]) -> Pack:
    ref = model_ref_from_config(model.config, model.name_or_path)
    return Pack(name="scale-choice", version="0.0.0", source=ref, target=ref,
                method=Method(extraction="mean-diff", pairs=PairsInfo("scale-choice", 1, "0" * 64),
                              lowpass_keep=None),
                directions=directions, defaults=Defaults(1.0, layers),
                hook=Hook(op="norm_preserving_add", positions="generated"),
                scale=Scale("cot_norm", tuple(float(x) for x in scales.clamp_min(1e-6)))).validate()


def breaking_strength(model: Any, tok: Any, pack: Pack, text: str, base: float,
                      budget: float) -> tuple[float, list[list[float]]]:
    """Largest grid strength before the perplexity first exceeds (1 + budget) * base."""
    last, curve = 0.0, []
    for lam in GRID:
        with l2v_hub.patch(model, pack, strength=lam, strict=True):
            ppl = perplexity(model, tok, text)
        curve.append([lam, round(ppl, 3)])
        if ppl > (1 + budget) * base:
            break
        last = lam
    return last, curve


def measure_model(key: str, cache: Path, pairs: PairSet, budget: float) -> dict[str, Any]:
    start = time.perf_counter()
    model, tok = LOADERS[key](cache)
    text, _ = neutral_text()
    states = block_outputs(model, torch.tensor([tok(text)["input_ids"]]))
    units = {name: torch.tensor([token_measures(s[0])[name] for s in states]) for name in UNITS[:2]}
    sink = [float(s[0, 0].norm() / s[0, 1:].norm(dim=-1).median()) for s in states]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ex = extract(model, tokenize_pairs(pairs, tok), method="mean-diff", batch_size=8,
                 pad_token_id=pad or 0, padding_side="left", keep_differences=False, progress=False)
    units["cot_norm"] = ex.mean_difference.norm(dim=-1).float()
    own = ex.mean_difference.float() / ex.mean_difference.norm(dim=-1, keepdim=True).float()
    L = len(states)
    layers = default_layers(L)
    base = perplexity(model, tok, text)
    rand = random_directions(own.shape[1], L, 0)
    result: dict[str, Any] = {
        "model": model.name_or_path, "blocks": L, "hidden": own.shape[1], "layers": list(layers),
        "perplexity": round(base, 3), "sink_ratio_middle": round(sink[layers[1]], 1),
        "units_middle": {u: round(float(units[u][layers[1]]), 3) for u in UNITS},
        "units": {u: [round(float(x), 4) for x in units[u]] for u in UNITS}, "lambda_star": {},
        "curves": {},
    }
    for unit in UNITS:
        for name, dirs in (("random", rand), ("own", own)):
            lam, curve = breaking_strength(model, tok, _pack(model, dirs, units[unit], layers), text,
                                           base, budget)
            result["lambda_star"][f"{unit}/{name}"] = lam
            result["curves"][f"{unit}/{name}"] = curve
            print(f"{key} {unit}/{name}: lambda* {lam:.4g}", flush=True)
    result["seconds"] = round(time.perf_counter() - start, 1)
    del model
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| model | sink / median norm | token_norm | token_spread | cot_norm | "
             + " | ".join(f"λ* {u} ({d})" for u in UNITS for d in ("random", "own")) + " |",
             "|---" * (5 + 2 * len(UNITS)) + "|"]
    for r in results:
        m = r["units_middle"]
        lams = [f"{lam:.3g}" if (lam := r["lambda_star"][f"{u}/{d}"]) > 0 else f"< {GRID[0]:.2g}"
                for u in UNITS for d in ("random", "own")]
        lines.append(f"| {r['model']} | {r['sink_ratio_middle']:g}x | {m['token_norm']:g} | "
                     f"{m['token_spread']:g} | {m['cot_norm']:g} | " + " | ".join(lams) + " |")
    spread = []
    for u in UNITS:
        for d in ("random", "own"):
            # A model that broke at the grid's first point counts as that point: a lower bound.
            lams = [r["lambda_star"][f"{u}/{d}"] for r in results]
            logs = [math.log2(lam if lam > 0 else GRID[0]) for lam in lams]
            bound = "> " if 0 in lams else ""
            spread.append(f"{bound}{max(logs) - min(logs):.1f}" if len(logs) > 1 else "-")
    lines.append("| **range of log2 λ* across models** | | | | | " + " | ".join(spread) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="smollm2,gemma,qwen0.5b")
    p.add_argument("--pairs", type=int, default=24, help="builtin pairs for cot_norm (evenly spaced)")
    p.add_argument("--budget", type=float, default=0.10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "l2v_hub")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "scale_choice.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    every = builtin_pairs()
    step = max(1, len(every.pairs) // args.pairs)
    pairs = PairSet(f"builtin-every-{step}th", every.style, every.pairs[::step][: args.pairs])
    # Models measured before (other runs) are kept; a model measured again is replaced.
    previous = json.loads(args.json.read_text())["results"] if args.json.is_file() else []
    results = list(previous)
    for key in args.models.split(","):
        new = measure_model(key, args.cache_dir, pairs, args.budget)
        results = [r for r in results if r["model"] != new["model"]] + [new]
        report = {"command": "python benchmarks/scale_choice.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  "torch": torch.__version__, "l2v_hub": l2v_hub.__version__,
                  "pairs": pairs.info().__dict__, "budget": args.budget, "results": results,
                  "table": table(results)}
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(table(results))
    print("median lambda*:", {u: statistics.median(r["lambda_star"][f"{u}/random"] for r in results)
                              for u in UNITS})


if __name__ == "__main__":
    main()
