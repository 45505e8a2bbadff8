"""Calibrated packs on real models: built and calibrated by the project, then applied with
``l2v_hub.patch(model)`` and nothing else (the pack found by the model's id through a registry),
beside a random-direction control. Writes docs/calibration.json and the tables of
docs/calibration.md (between its markers).

    .venv/bin/python benchmarks/calibration.py --cases smollm2,gemma,smollm2-gemma,qwen0.5b
    .venv/bin/python benchmarks/calibration.py --cases qwen1.5b-qwen0.5b

A case ``SOURCE-TARGET`` (or ``MODEL`` for a model's own pack) builds the pack from ``--pairs``
builtin pairs of the source, calibrates it on the target (l2v_hub.calibrate, defaults), publishes
it to a local store, registers it, and then, with the model patched by ``l2v_hub.patch(model)``:
- the neutral-text perplexity, against the unpatched one and the calibration budget;
- the answers to a fixed set of 20 problems (the "readability" split of the builtin problems,
  disjoint from the calibration split): accuracy, step-by-step share, mean tokens, the share of
  non-ASCII characters, and the unpatched model's perplexity of the answers (how readable the
  text is to the model itself: token soup scores in the thousands);
- the same for the random control (the pack with seeded random unit directions, same s_i,
  strength, blocks, op and positions) and for the unpatched model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

# Before huggingface_hub is imported (it reads the variable once): nothing here asks the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers

import l2v_hub
from l2v_hub.builder import PairSet, build_pack, builtin_pairs
from l2v_hub.calibrate import calibrate
from l2v_hub.demo import models as real
from l2v_hub.hub import publish, register, suggest_repo_name
from l2v_hub.measure import (
    answer_problems,
    builtin_problems,
    neutral_text,
    perplexity,
    prompt_ids,
    random_directions,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {"smollm2": real.load_smollm2, "gemma": real.load_gemma,
           "qwen0.5b": real.load_qwen_05b, "qwen1.5b": real.load_qwen_15b}
BEGIN, END = "<!-- calibration-results:begin -->", "<!-- calibration-results:end -->"


@torch.inference_mode()
def answer_perplexity(model: Any, tokenizer: Any, question: str, answer: str) -> float | None:
    """The model's perplexity of ``answer`` written after the question's prompt (None if empty)."""
    prompt = prompt_ids(tokenizer, question)
    # In the plain "Question: ...\nAnswer:" frame the model wrote a space before the answer, which
    # answer_problems strips; scoring it without would score an unnatural tokenization.
    spaced = answer if getattr(tokenizer, "chat_template", None) else " " + answer
    tokens = tokenizer(spaced, add_special_tokens=False)["input_ids"]
    if not tokens:
        return None
    ids = torch.tensor([prompt + tokens])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
    return math.exp(float(torch.nn.functional.cross_entropy(logits, torch.tensor(tokens))))


@contextlib.contextmanager
def paused(handle: Any) -> Iterator[None]:
    """The patch stays on, paused: the unpatched model scores the answers."""
    was, handle.enabled = handle.enabled, False
    try:
        yield
    finally:
        handle.enabled = was


def row(model: Any, tok: Any, handle: Any, problems: list[Any], text: str, tokens: int) -> dict[str, Any]:
    """Measures of the model as ``handle`` leaves it now (enabled or paused); the unpatched model
    (``handle`` paused) scores the answers' readability."""
    ppl = perplexity(model, tok, text)
    answers = answer_problems(model, tok, problems, tokens)
    with paused(handle):
        scores = [answer_perplexity(model, tok, p.question, a.text) for p, a in zip(problems, answers, strict=True)]
    finite = sorted(s for s in scores if s is not None)
    out = summarize(answers)
    out.update(perplexity=round(ppl, 4), answer_perplexity_median=finite[len(finite) // 2] if finite else None,
               answer_perplexity_max=finite[-1] if finite else None)
    return out


def run_case(case: str, args: argparse.Namespace, store: Path, registry: Path) -> dict[str, Any]:
    source_key, _, target_key = case.partition("-")
    target_key = target_key or source_key
    started = time.perf_counter()
    every = builtin_pairs()
    step = len(every.pairs) // args.pairs
    pairs = PairSet(f"builtin-every-{step}th", every.style, every.pairs[::step][: args.pairs])
    model, tok = LOADERS[source_key](args.cache_dir)
    target_config = model.config
    if target_key != source_key:
        del model
        target, target_tok = LOADERS[target_key](args.cache_dir)
        target_config = target.config
        source, source_tok = LOADERS[source_key](args.cache_dir)
    else:
        source, source_tok, target, target_tok = model, tok, model, tok
    from l2v_hub.builder.target import model_ref_from_config

    target_ref = model_ref_from_config(target_config, target.name_or_path)
    pack = build_pack(source, source_tok, target_ref, pairs, version="1.0.0", progress=False)
    built = time.perf_counter() - started
    if source is not target:
        del source
    pack = calibrate(pack, target, target_tok, progress=False)
    calibrated = time.perf_counter() - started - built
    repo = f"bench/{suggest_repo_name(pack)}"
    publish(pack, repo, store=store)
    register(registry, repo, store=store)
    text, _ = neutral_text()
    problems = builtin_problems("readability", args.problems)
    rows: dict[str, Any] = {}
    with l2v_hub.patch(target) as handle:  # by the model's id, through the registry: nothing else
        handle.enabled = False
        rows["unpatched"] = row(target, target_tok, handle, problems, text, args.max_new_tokens)
        handle.enabled = True
        rows["pack"] = row(target, target_tok, handle, problems, text, args.max_new_tokens)
        applied = {"strength": handle.strength, "positions": handle.positions, "layers": list(handle.layers),
                   "op": handle.op, "scale_origin": handle.scale_origin}
    control = replace(pack, directions=random_directions(pack.target.hidden_size, pack.target.num_layers,
                                                         pack.calibration.control_seed))
    with l2v_hub.patch(target, control) as handle:
        rows["random control"] = row(target, target_tok, handle, problems, text, args.max_new_tokens)
    c = pack.calibration
    return {
        "scales": ", ".join(f"{b}: {pack.scale.values[b]:.3g}" for b in pack.defaults.layers),
        "case": case, "source": pack.source.model_id, "target": pack.target.model_id,
        "pack": f"{pack.name}@{pack.version}", "applied": applied, "budget": c.budget,
        "calibration": c.to_json(), "rows": rows,
        "within_budget": rows["pack"]["perplexity"] <= (1 + c.budget) * rows["unpatched"]["perplexity"],
        "seconds": {"build": round(built, 1), "calibrate": round(calibrated, 1),
                    "total": round(time.perf_counter() - started, 1)},
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Command: `{report['command']}`  ",
             f"Versions: l2v-hub {report['versions']['l2v_hub']}, torch {report['versions']['torch']}, "
             f"transformers {report['versions']['transformers']}, Python {report['versions']['python']}; "
             f"{report['threads']} torch thread(s), shared 2-core machine (other jobs running).", "",
             "| case | row | λ (positions) | neutral ppl | within +10% | accuracy | step-by-step | tokens | truncated | non-ASCII | answer ppl (median / max) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["cases"].values():
        base = r["rows"]["unpatched"]["perplexity"]
        for name, m in r["rows"].items():
            lam = "–" if name == "unpatched" else f"{r['applied']['strength']:g} ({r['applied']['positions']})"
            ok = "–" if name == "unpatched" else ("yes" if m["perplexity"] <= (1 + r["budget"]) * base else "**no**")
            med, top = m["answer_perplexity_median"], m["answer_perplexity_max"]
            lines.append(
                f"| {r['case']} | {name} | {lam} | {m['perplexity']:.4g} | {ok} | {m['accuracy']:.2f} | "
                f"{m['step_by_step']:.2f} | {m['answer_tokens']:.1f} | {m['truncated']:.2f} | "
                f"{m['non_ascii']:.3f} | {med:.3g} / {top:.3g} |" if med is not None else
                f"| {r['case']} | {name} | {lam} | {m['perplexity']:.4g} | {ok} | {m['accuracy']:.2f} | "
                f"{m['step_by_step']:.2f} | {m['answer_tokens']:.1f} | {m['truncated']:.2f} | "
                f"{m['non_ascii']:.3f} | – |")
    lines += ["", "Calibration of each pack (on its target, 20 calibration problems, 64 tokens):", "",
              "| case | s_i at the default blocks | sweep (positions: λ → perplexity) | chosen | calibration rows: unpatched / pack / random (accuracy, step-by-step) | cos with target's own direction | seconds (build / calibrate / total) |",
              "|---|---|---|---|---|---|---|"]
    for r in report["cases"].values():
        c = r["calibration"]
        sweep = "<br>".join(f"{p}: " + ", ".join(f"{g['strength']:g} → {g['perplexity']:.4g}" for g in c["grid"]
                                                 if g["positions"] == p)
                            for p in dict.fromkeys(g["positions"] for g in c["grid"]))
        rows3 = " / ".join(f"{c[k]['accuracy']:.2f}, {c[k]['step_by_step']:.2f}" for k in ("baseline", "pack", "control"))
        cos = ", ".join(f"{b}: {v:+.3f}" for b, v in c["cosine_own"].items())
        s = r["seconds"]
        lines.append(f"| {r['case']} | {r['scales']} | {sweep} | {c['strength']:g} ({c['positions']}) | {rows3} | {cos} | "
                     f"{s['build']:.0f} / {s['calibrate']:.0f} / {s['total']:.0f} |")
    return "\n".join(lines)


def write(report: dict[str, Any], args: argparse.Namespace) -> None:
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    doc = args.out.read_text(encoding="utf-8") if args.out.is_file() else f"{BEGIN}\n{END}\n"
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    args.out.write_text(f"{head}{BEGIN}\n{markdown(report)}\n{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default="smollm2,gemma,smollm2-gemma,qwen0.5b,qwen1.5b-qwen0.5b")
    p.add_argument("--pairs", type=int, default=32, help="builtin pairs the source is read on")
    p.add_argument("--problems", type=int, default=20)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "l2v_hub")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "calibration.json")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "calibration.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = json.loads(args.json.read_text()) if args.json.is_file() else {"cases": {}}
    report.update(command="python benchmarks/calibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  versions={"l2v_hub": l2v_hub.__version__, "torch": torch.__version__,
                            "transformers": transformers.__version__, "python": platform.python_version()},
                  threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / "store"
        for case in args.cases.split(","):
            # One registry per case: two cases may steer the same model with different packs.
            registry = Path(scratch) / f"registry-{case}.json"
            os.environ.update(L2V_HUB_STORE=str(store), L2V_HUB_REGISTRY=str(registry))
            result = run_case(case, args, store, registry)
            report["cases"][case] = result
            write(report, args)
            print(f"{case}: within budget {result['within_budget']}, {result['seconds']['total']} s", flush=True)


if __name__ == "__main__":
    main()
