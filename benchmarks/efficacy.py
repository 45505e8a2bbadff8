"""Efficacy of CoT packs on real small models: does steering change accuracy, step-by-step
structure, length and fluency, and is the change the direction's (against a random direction)?

    .venv/bin/python benchmarks/efficacy.py                   # every case and row (see --help)
    .venv/bin/python benchmarks/efficacy.py --cases smollm2-smollm2 --limit 3 --max-new-tokens 8

Cases pair a source LLM with a target (SmolLM2-135M-Instruct and Gemma 3 270M, both loaded from
their PyPI GGUF packages). Every row is a real ``l2v_hub.Pack`` applied with ``l2v_hub.patch``;
all directions of a source come from one extraction, cached under ``--cache-dir``. Writes a JSON
file, the markdown tables (between the markers of ``--out``, or the whole file) and a plot.
Definitions and the reading of the results: docs/efficacy.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from efficacy_directions import encode_variant, make_pack, random_directions, source_extraction
from efficacy_eval import NEUTRAL_TEXT, Target, evaluate, load_problems, perplexity
from efficacy_report import write_markdown, write_plot

import l2v_hub
from l2v_hub.builder import builtin_pairs, default_keep, default_layers
from l2v_hub.builder.pairs import PairSet
from l2v_hub.builder.target import model_ref_from_config
from l2v_hub.demo.models import load_gemma, load_smollm2

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"smollm2": (load_smollm2, True), "gemma": (load_gemma, False)}  # loader, chat template
CASES = {
    "smollm2-gemma": ("smollm2", "gemma"),
    "smollm2-smollm2": ("smollm2", "smollm2"),
    "gemma-gemma": ("gemma", "gemma"),
    "gemma-smollm2": ("gemma", "smollm2"),
}
ABLATIONS = ("early", "late", "highpass", "unfiltered", "linear", "own", "pca", "add")
POSITIONS = ("first_and_generated", "generated", "all")


@dataclass(frozen=True)
class Row:
    """One line of a case's table: which direction, at what strength, where and how it is applied."""

    id: str
    group: str
    direction: str  # none, cot, random, highpass, unfiltered, linear, own, pca
    strength: float = 0.0
    band: str = "middle"
    op: str = "norm_preserving_add"
    positions: str = "first_and_generated"


def case_rows(cross: bool, strengths: list[float], random_strengths: list[float], ablation: float,
              positions: str, only: set[str] | None) -> list[Row]:
    """The rows of one case; resampling and own-vs-transferred exist only across models.

    Every steered row uses ``positions`` except the positions rows, which swap it for each of
    the other policies (the random control is repeated under the pack default's policy).
    """
    rows = [Row("none", "baseline", "none")]
    rows += [Row(f"cot@{s:g}", "strength sweep", "cot", s, positions=positions) for s in strengths]
    rows += [Row(f"random@{s:g}", "control", "random", s, positions=positions) for s in random_strengths]
    a = ablation
    if f"cot@{a:g}" not in {r.id for r in rows}:
        rows.append(Row(f"cot@{a:g}", "strength sweep", "cot", a, positions=positions))
    extra = {
        "early": Row("early", "layers", "cot", a, band="early", positions=positions),
        "late": Row("late", "layers", "cot", a, band="late", positions=positions),
        "highpass": Row("highpass", "filter", "highpass", a, positions=positions),
        "unfiltered": Row("unfiltered", "filter", "unfiltered", a, positions=positions),
        "linear": Row("linear", "resampling", "linear", a, positions=positions),
        "own": Row("own", "source", "own", a, positions=positions),
        "pca": Row("pca", "extraction", "pca", a, positions=positions),
        "add": Row("add", "op", "cot", a, op="add", positions=positions),
    }
    rows += [extra[k] for k in ABLATIONS if cross or k not in ("linear", "own")]
    rows += [Row(p, "positions", "cot", a, positions=p) for p in POSITIONS if p != positions]
    if positions != "first_and_generated":
        rows.append(Row("random-first_and_generated", "positions", "random", a,
                        positions="first_and_generated"))
    return [r for r in rows if only is None or r.id in only or r.id == "none"]


def layer_band(band: str, num_layers: int) -> tuple[int, ...]:
    """``middle``: build_pack's default layers; ``early`` / ``late``: 3 blocks around 1/6 and 5/6
    of the depth."""
    if band == "middle":
        return default_layers(num_layers)
    centre = round((1 / 6 if band == "early" else 5 / 6) * (num_layers - 1))
    return tuple(i for i in range(centre - 1, centre + 2) if 0 <= i < num_layers)


def row_directions(row: Row, src: dict[str, torch.Tensor], own: dict[str, torch.Tensor],
                   source_ref: Any, target_ref: Any, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The row's ``[target layers, target hidden]`` directions and the Method fields they record."""
    hidden, layers = target_ref.hidden_size, target_ref.num_layers
    keep = default_keep(source_ref.hidden_size, hidden)
    if row.direction == "random":
        return random_directions(hidden, layers, seed), {"extraction": "random", "keep": None,
                                                         "resampler": "none"}
    if row.direction == "own":
        own_keep = default_keep(hidden, hidden)
        return encode_variant(own["mean-diff"], hidden, layers, keep=own_keep), {
            "extraction": "mean-diff", "keep": own_keep, "resampler": "fourier"}
    band = {"highpass": "high", "unfiltered": "none", "linear": "none"}.get(row.direction, "low")
    resampler = "linear" if row.direction == "linear" else "fourier"
    extraction = "pca" if row.direction == "pca" else "mean-diff"
    dirs = encode_variant(src[extraction], hidden, layers, keep=keep, band=band, resampler=resampler)
    return dirs, {"extraction": extraction, "keep": keep if band == "low" else None,
                  "resampler": resampler}


def _cos_own(dirs: torch.Tensor, own: dict[str, torch.Tensor], layers: tuple[int, ...]) -> float:
    # Alignment with the target's own (raw, unfiltered) CoT mean difference at the steered blocks.
    ref = own["mean-diff"][list(layers)].float()
    d = dirs[list(layers)]
    return float(torch.nn.functional.cosine_similarity(d, ref, dim=-1).mean())


def run_case(case: str, args: argparse.Namespace, models: dict[str, Any], extractions: dict[str, Any],
             pairs: PairSet, memo: dict[Any, dict[str, Any]], on_row: Any) -> list[dict[str, Any]]:
    source_key, target_key = CASES[case]
    (source_model, _), (target_model, target_tok) = models[source_key], models[target_key]
    source_ref = model_ref_from_config(source_model.config, source_model.name_or_path)
    target_ref = model_ref_from_config(target_model.config, target_model.name_or_path)
    target = Target(target_model, target_tok, MODELS[target_key][1])
    problems = load_problems(limit=args.limit)
    neutral = NEUTRAL_TEXT.read_text(encoding="utf-8").strip()
    strengths = args.strengths[target_key]
    rows = case_rows(source_key != target_key, strengths, strengths, strengths[len(strengths) // 2],
                     args.positions, set(args.rows) if args.rows else None)
    results: list[dict[str, Any]] = []
    for row in rows:
        layers = layer_band(row.band, target_ref.num_layers)
        record = {**asdict(row), "layers": list(layers)}
        pack = None
        if row.direction != "none":
            dirs, how = row_directions(row, extractions[source_key], extractions[target_key],
                                       source_ref, target_ref, args.seed)
            pack = make_pack(f"efficacy-{case}-{row.id}", target_ref if row.direction == "own" else source_ref,
                             target_ref, dirs, extraction=how["extraction"],
                             pairs=None if row.direction == "random" else pairs.info(), keep=how["keep"],
                             resampler=how["resampler"], strength=row.strength, layers=layers,
                             op=row.op, positions=row.positions,
                             ablation={"row": row.id, "direction": row.direction, "seed": args.seed})
            record["cos_own"] = _cos_own(dirs, extractions[target_key], layers)
        key = (target_key, None if pack is None else hashlib.sha256(
            pack.directions.numpy().tobytes()).hexdigest(), row.strength, layers, row.op, row.positions)
        if key not in memo:
            start = time.perf_counter()
            memo[key] = _measure(target, pack, problems, neutral, args)
            memo[key]["seconds"] = round(time.perf_counter() - start, 1)
        record.update(memo[key])
        # Paired against the unpatched row (always first): problems this row fixes and breaks.
        base = (results[0] if results else record)["correct"]
        record["won"] = sum(not b and c for b, c in zip(base, record["correct"], strict=True))
        record["lost"] = sum(b and not c for b, c in zip(base, record["correct"], strict=True))
        results.append(record)
        on_row(case, results)
    return results


def _measure(target: Target, pack: Any, problems: list[Any], neutral: str,
             args: argparse.Namespace) -> dict[str, Any]:
    if pack is None:
        out = evaluate(target, problems, args.max_new_tokens, args.batch_size)
        return {**out, "perplexity": perplexity(target, neutral)}
    with l2v_hub.patch(target.model, pack, strict=True):
        out = evaluate(target, problems, args.max_new_tokens, args.batch_size)
        ppl = perplexity(target, neutral)
    return {**out, "perplexity": ppl}


# Per target model: lambda is relative to the state's norm, and Gemma 3's block outputs put ~98% of
# their squared norm in 4 massive dimensions, so it breaks at a tenth of SmolLM2's strengths.
DEFAULT_STRENGTHS = {"smollm2": [0.05, 0.1, 0.2], "gemma": [0.005, 0.01, 0.02]}


def _strengths(text: str) -> tuple[str, list[float]]:
    model, _, values = text.rpartition("=")
    if model not in MODELS:
        raise argparse.ArgumentTypeError(f"expected MODEL=S1,S2,... with MODEL in {', '.join(MODELS)}")
    return model, sorted(float(x) for x in values.split(",") if x.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=lambda s: s.split(","), default=list(CASES),
                   help=f"comma-separated, from {', '.join(CASES)} (default: all)")
    p.add_argument("--rows", type=lambda s: s.split(","), default=None,
                   help="only these row ids (e.g. cot@0.1,random@0.1,highpass); 'none' is always run")
    p.add_argument("--limit", type=int, default=100, help="evaluation problems (default 100: all)")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--strengths", type=_strengths, action="append", default=[],
                   help="MODEL=S1,S2,... the sweep on target MODEL, also the random control's; the "
                        "ablation rows use its middle value (default smollm2=0.05,0.1,0.2 and "
                        "gemma=0.005,0.01,0.02); repeat for each model")
    p.add_argument("--positions", choices=POSITIONS, default="generated",
                   help="positions policy of the sweep and ablation rows (default generated)")
    p.add_argument("--pairs", type=int, default=None, help="use only the first N builtin pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random control direction")
    p.add_argument("--batch-size", type=int, default=50)
    # One thread: on the shared 2-core machine two threads decoded 4x slower than one.
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch's)")
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "l2v_hub",
                   help="model cache; extractions go to its efficacy/ folder")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "efficacy.json")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "efficacy.md",
                   help="markdown; only the part between its efficacy markers is replaced")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "efficacy.png")
    args = p.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}; expected some of {', '.join(CASES)}")
    args.strengths = {**DEFAULT_STRENGTHS, **dict(args.strengths)}
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pairs = builtin_pairs()
    if args.pairs:
        pairs = PairSet(f"builtin[:{args.pairs}]", pairs.style, pairs.pairs[: args.pairs])
    needed = sorted({m for c in args.cases for m in CASES[c]})
    models = {k: MODELS[k][0](args.cache_dir) for k in needed}
    extractions = {k: source_extraction(m, tok, m.name_or_path, pairs, args.cache_dir / "efficacy")
                   for k, (m, tok) in models.items()}
    report: dict[str, Any] = {
        "command": "python benchmarks/efficacy.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "versions": {"l2v_hub": l2v_hub.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__, "python": platform.python_version()},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "pairs": asdict(pairs.info()), "threads": torch.get_num_threads(), "cases": {},
    }
    memo: dict[Any, dict[str, Any]] = {}

    def save(case: str, rows: list[dict[str, Any]]) -> None:
        report["cases"][case] = rows
        report["runtime_s"] = round(time.perf_counter() - started, 1)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        write_markdown(report, args.out)
        r = rows[-1]
        print(f"{case} {r['id']}: accuracy {r['accuracy']:.2f}, step-by-step {r['step_by_step']:.2f}, "
              f"perplexity {r['perplexity']:.1f} ({r['seconds']} s)", flush=True)

    for case in args.cases:
        rows = run_case(case, args, models, extractions, pairs, memo, save)
        save(case, rows)
        if args.plot:
            write_plot(report, args.plot)
        print(f"{case}: {len(rows)} rows, {report['runtime_s']} s elapsed", flush=True)
    return report


if __name__ == "__main__":
    main()
