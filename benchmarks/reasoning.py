"""Which contrast recipe, positions policy and strength move a model's reasoning (docs/reasoning.md).

Issue 18's experiment on Qwen2.5-Coder-0.5B-Instruct: packs of the target's OWN direction (the
positive control: can this steering move reasoning at all?), then the same recipes transferred
from Qwen2.5-Coder-1.5B-Instruct at several low-pass widths, each beside its seeded random
control (same s_i, strength, blocks, op and positions), then the paper's regime (the CoT prompt
with and without the pack) for accuracy.

    .venv/bin/python benchmarks/reasoning.py directions          # own packs (0.5B) and 1.5B packs
    .venv/bin/python benchmarks/reasoning.py sweep --n 200        # the short-answer grid
    .venv/bin/python benchmarks/reasoning.py cot --n 100          # the CoT-prompt accuracy rows
    .venv/bin/python benchmarks/reasoning.py report               # docs/reasoning.md + json + png

The short-answer measure: whether the model OPENS with reasoning, read off its first
``--tokens`` answer tokens under the ``direct`` prompt ("Answer with only the final number."):
an opening that states a number not in the question, or "the answer is ...", before any other
clause is a direct answer; anything else opens reasoning (rule: ``opens_reasoning``). Every
answer is also scored for readability: the unpatched model's perplexity of the answer after its
prompt, and its share of non-ASCII characters.

Speed (why the numbers could be afforded on 2 shared cores): policies that steer no prompt token
before the last one (``generated``, ``prompt_last``, ``prompt_last_and_generated``) leave the KV
of prompt positions 0..P-2 exactly as unpatched, so that prefix is computed once per batch and
each row generates from a copy of it through ``model.generate(past_key_values=...)``; the loader
counts the cached tokens as prompt (docs/loader.md), so the same tokens are steered. The ``check``
row of the report holds the test of that claim: the same answers with and without the shared
prefix. ``all`` and ``first_and_generated`` steer earlier prompt tokens and are run in full.
"""

from __future__ import annotations

import argparse
import copy
import fcntl
import json
import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from l2v_hub import Pack, patch
from l2v_hub.builder import build_pack
from l2v_hub.builder.llm import dequantize_gguf
from l2v_hub.builder.pairs import PairSet, builtin_pairs, prompt_contrast
from l2v_hub.demo.models import load_qwen, qwen_gguf
from l2v_hub.measure import neutral_text, perplexity
from l2v_hub.measure.answers import non_ascii_share
from l2v_hub.measure.control import random_directions
from l2v_hub.measure.onset import opens_reasoning
from l2v_hub.measure.problems import builtin_problems
from l2v_hub.measure.prompts import encode, pad_id
from l2v_hub.metadata import Hook, Scale
from l2v_hub.spectral import lowpass, num_bins

CACHE = Path(".cache/l2v_hub")
WORK = Path(".cache/reasoning")
PAIRS = 32  # every 9th builtin problem, as the probe
SEED = 0


def subset(pairs: PairSet) -> PairSet:
    step = len(pairs.pairs) // PAIRS
    return PairSet(f"{pairs.source}-every-{step}th", pairs.style, pairs.pairs[::step][:PAIRS])


RECIPES = {  # name -> (pairs, read)
    "worked-last": (lambda: subset(builtin_pairs()), "last"),
    "prompt-last": (lambda: subset(prompt_contrast()), "last"),
    "worked-mean": (lambda: subset(builtin_pairs()), "response_mean"),
    "worked-first": (lambda: subset(builtin_pairs()), "response_first"),
}


def folder(size: str) -> Path:
    return dequantize_gguf(qwen_gguf(size, CACHE), torch.float32, CACHE)


def load(size: str) -> tuple[Any, Any]:
    torch.manual_seed(0)
    return load_qwen(size, CACHE)


def _build(model: Any, tok: Any, recipe: str, target: Path, target_id: str, keep: int) -> Pack:
    pairs, read = RECIPES[recipe]
    kwargs = {} if read == "last" else {"read": read}
    return build_pack(model, tok, target, pairs(), keep=keep, diagnostics=False, progress=False,
                      target_id=target_id, batch_size=8, **kwargs)


def directions(args: argparse.Namespace) -> None:
    """Own packs of the 0.5B (unfiltered) per recipe; the 1.5B's packs for the 0.5B (unfiltered:
    every bin the 896-d target holds; filtered versions are derived at sweep time)."""
    out = WORK / "packs"
    out.mkdir(parents=True, exist_ok=True)
    recipes = args.recipes.split(",")
    for size in args.sources.split(","):
        model, tok = load(size)
        for recipe in recipes:
            dest = out / f"{size}-{recipe}"
            if (dest / "pack.json").is_file():
                continue
            t = time.time()
            pack = _build(model, tok, recipe, folder("0.5b"), "Qwen/Qwen2.5-Coder-0.5B-Instruct",
                          num_bins(model.config.hidden_size))
            pack.save_pretrained(dest)
            print(f"{dest}: {time.time() - t:.0f} s", flush=True)
        del model


def steering_pack(source: str, recipe: str, keep: int | None) -> Pack:
    """The pack of ``source``'s ``recipe`` direction for the 0.5B: s_i is the norm of the 0.5B's
    OWN mean difference under the same recipe (``cot_norm``), so lambda means the same push for
    an own and a transferred direction; ``keep`` low-pass bins (None: unfiltered)."""
    own = Pack.from_pretrained(WORK / "packs" / f"0.5b-{recipe}")
    pack = Pack.from_pretrained(WORK / "packs" / f"{source}-{recipe}")
    scales = tuple(float(layer["norm"]) for layer in own.stats["layers"])
    dirs = pack.directions
    if keep is not None:  # low-pass and resampling commute for keep <= the target's bins
        dirs = lowpass(dirs, keep)
        dirs = (dirs / dirs.norm(dim=-1, keepdim=True)).contiguous()
    return replace(pack, directions=dirs, scale=Scale("cot_norm", scales),
                   method=replace(pack.method, lowpass_keep=keep or pack.method.lowpass_keep),
                   hook=Hook(op="norm_preserving_add", positions="generated"))


def control_of(pack: Pack) -> Pack:
    t = pack.target
    return replace(pack, directions=random_directions(t.hidden_size, t.num_layers, SEED))


SHARED = ("generated", "prompt_last", "prompt_last_and_generated")


class Runner:
    """Short greedy answers of one model to fixed problems, batch by batch, with the unpatched
    prompt prefix (positions 0..P-2) computed once per batch."""

    def __init__(self, model: Any, tok: Any, problems: list[Any], regime: str, tokens: int,
                 batch: int) -> None:
        self.model, self.tok, self.problems, self.tokens = model, tok, problems, tokens
        self.pad = pad_id(tok)
        self.batches = []
        order = sorted(range(len(problems)), key=lambda i: len(problems[i].question))
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            inputs = encode(tok, [problems[i] for i in idx], regime)
            # Before any patch: the prefix must be the UNPATCHED model's.
            # Position ids from the mask, as generate makes them for a left-padded batch.
            mask = inputs["attention_mask"][:, :-1]
            positions = (mask.cumsum(-1) - 1).clamp_min(0)
            with torch.inference_mode():
                cache = model(input_ids=inputs["input_ids"][:, :-1], attention_mask=mask,
                              position_ids=positions, use_cache=True,
                              logits_to_keep=1).past_key_values
            self.batches.append((idx, inputs, cache))

    def _prefix(self, k: int) -> Any:
        return self.batches[k][2]

    @torch.inference_mode()
    def answers(self, shared: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(self.problems)
        for k, (idx, inputs, _) in enumerate(self.batches):
            extra = {"past_key_values": copy.deepcopy(self._prefix(k))} if shared else {}
            gen = self.model.generate(**inputs, do_sample=False, max_new_tokens=self.tokens,
                                      pad_token_id=self.pad, **extra)
            width = inputs["input_ids"].shape[1]
            for row, i in zip(gen[:, width:].tolist(), idx, strict=True):
                eos = self.model.generation_config.eos_token_id
                eos = set(eos if isinstance(eos, list) else [eos])
                end = next((j for j, t in enumerate(row) if t in eos), len(row))
                out[i] = {"id": self.problems[i].id, "ids": row[:end],
                          "text": self.tok.decode(row[:end], skip_special_tokens=True).strip()}
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def readability(self, answers: list[dict[str, Any]]) -> list[float | None]:
        """The UNPATCHED model's perplexity of each answer after its prompt (None: empty)."""
        ppl: list[float | None] = [None] * len(answers)
        for k, (idx, inputs, _) in enumerate(self.batches):
            rows = [answers[i]["ids"] for i in idx]
            width = max(1, max(len(r) for r in rows))
            ids = torch.full((len(idx), width + 1), self.pad)
            ids[:, 0] = inputs["input_ids"][:, -1]
            for r, row in enumerate(rows):
                ids[r, 1:1 + len(row)] = torch.tensor(row, dtype=torch.long)
            mask = torch.cat([inputs["attention_mask"], torch.ones(len(idx), width)], 1).long()
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=True,
                                past_key_values=copy.deepcopy(self._prefix(k))).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:],
                                                    reduction="none")
            for r, (i, row) in enumerate(zip(idx, rows, strict=True)):
                if row:
                    ppl[i] = math.exp(float(nll[r, :len(row)].mean()))
        return ppl


def _rows_path() -> Path:
    return WORK / "rows.jsonl"


def done_rows() -> dict[str, dict[str, Any]]:
    path = _rows_path()
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["key"]: r for r in rows}


def run_row(runner: Runner, key: str, spec: dict[str, Any], pack: Pack | None,
            strength: float, positions: str) -> None:
    if key in done_rows():
        return
    model, tok = runner.model, runner.tok
    t = time.time()
    if pack is None:
        answers = runner.answers(shared=True)
        neutral = perplexity(model, tok, NEUTRAL)
    else:
        with patch(model, pack, strength=strength, positions=positions, strict=False):
            answers = runner.answers(shared=positions in SHARED)
            neutral = perplexity(model, tok, NEUTRAL)
    ppl = runner.readability(answers)
    for a, p, prob in zip(answers, ppl, runner.problems, strict=True):
        a["ppl"] = None if p is None else round(p, 3)
        a["reasons"] = opens_reasoning(a["text"], prob.question)
        a["non_ascii"] = round(non_ascii_share(a["text"]), 4)
        del a["ids"]
    row = {"key": key, **spec, "strength": strength, "positions": positions,
           "neutral_ppl": round(neutral, 4), "seconds": round(time.time() - t, 1),
           "n": len(answers), "answers": answers}
    with _rows_path().open("a") as f:  # several sweeps may append at once: one line, locked
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(row) + "\n")
    share = sum(a["reasons"] for a in answers) / len(answers)
    print(f"{key}: reasons {share:.2f}, neutral ppl {neutral:.3f}, {row['seconds']} s", flush=True)


def problems(n: int) -> list[Any]:
    every = [p for p in builtin_problems("heldout", None) if not p.choices]
    step = len(every) / n
    return [every[int(i * step)] for i in range(n)]


NEUTRAL = neutral_text()[0]


def sweep(args: argparse.Namespace) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    model, tok = load("0.5b")
    runner = Runner(model, tok, problems(args.n), "direct", args.tokens, args.batch)
    base = {"n_problems": args.n, "tokens": args.tokens, "regime": "direct"}
    run_row(runner, f"unpatched/n{args.n}", {**base, "kind": "unpatched"}, None, 0.0, "generated")
    if args.reference and f"reference/n{args.n}" not in done_rows():
        # The instrument's own check: the same model asked to think step by step.
        cot = Runner(model, tok, problems(args.n), "cot", args.tokens, args.batch)
        run_row(cot, f"reference/n{args.n}", {**base, "kind": "reference", "regime": "cot"}, None,
                0.0, "generated")
    for item in args.grid.split(";"):
        # source:recipe:keep:positions:strengths, e.g. 0.5b:prompt-last:none:generated:0.5,1,2
        source, recipe, keep, positions, strengths = item.split(":")
        keep_bins = None if keep == "none" else int(keep)
        pack = steering_pack(source, recipe, keep_bins)
        for s in (float(x) for x in strengths.split(",")):
            for kind, p in (("pack", pack), ("control", control_of(pack))):
                spec = {**base, "kind": kind, "source": source, "recipe": recipe, "keep": keep}
                key = f"{kind}/{source}/{recipe}/{keep}/{positions}/{s:g}/n{args.n}"
                run_row(runner, key, spec, p, s, positions)


def check(args: argparse.Namespace) -> None:
    """The shared-prefix answers equal plain generate's for a steered row (and unpatched)."""
    model, tok = load("0.5b")
    runner = Runner(model, tok, problems(args.n), "direct", args.tokens, args.batch)
    pack = steering_pack("0.5b", args.recipe, None)
    result = {}
    for positions in args.positions.split(","):
        if positions == "unpatched":
            a = [x["ids"] for x in runner.answers(shared=True)]
            b = [x["ids"] for x in runner.answers(shared=False)]
            result[positions] = {"n": len(a), "equal": sum(x == y for x, y in zip(a, b, strict=True))}
            print(positions, result[positions], flush=True)
            continue
        with patch(model, pack, strength=args.strength, positions=positions, strict=False):
            a = [x["ids"] for x in runner.answers(shared=True)]
            b = [x["ids"] for x in runner.answers(shared=False)]
        result[positions] = {"n": len(a), "equal": sum(x == y for x, y in zip(a, b, strict=True))}
        print(positions, result[positions], flush=True)
    (WORK / "check.json").write_text(json.dumps({"recipe": args.recipe, "strength": args.strength,
                                                 "tokens": args.tokens, **result}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    d = sub.add_parser("directions")
    d.add_argument("--sources", default="0.5b,1.5b")
    d.add_argument("--recipes", default="worked-last,prompt-last")
    for name in ("sweep", "check"):
        s = sub.add_parser(name)
        s.add_argument("--n", type=int, default=200)
        s.add_argument("--tokens", type=int, default=10)
        s.add_argument("--batch", type=int, default=50)
        s.add_argument("--grid", default="")
        s.add_argument("--recipe", default="prompt-last")
        s.add_argument("--strength", type=float, default=1.0)
        s.add_argument("--positions", default="prompt_last,generated")
        s.add_argument("--reference", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("--json", default="docs/efficacy/reasoning.json")
    r.add_argument("--doc", default="docs/reasoning.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    {"directions": directions, "sweep": sweep, "check": check, "report": report}[args.stage](args)


# ---------------------------------------------------------------------------------------------
# The report: every row re-scored by the library's rule, paired against its control.

READABLE_PPL = 20.0  # an answer the unpatched model finds this unlikely (or non-ASCII) is broken
PLOT = Path("docs/reasoning.png")


def _readable(a: dict[str, Any]) -> bool:
    return a["ppl"] is not None and a["ppl"] <= READABLE_PPL and a["non_ascii"] <= 0.05


def _summary(row: dict[str, Any], questions: dict[str, str]) -> dict[str, Any]:
    answers = row["answers"]
    for a in answers:
        a["reasons"] = opens_reasoning(a["text"], questions[a["id"]])
    n = len(answers)
    ppls = sorted(a["ppl"] for a in answers if a["ppl"] is not None)
    return {
        "reasons": sum(a["reasons"] for a in answers) / n,
        "readable": sum(_readable(a) for a in answers) / n,
        "reasons_readable": sum(a["reasons"] and _readable(a) for a in answers) / n,
        "median_ppl": ppls[len(ppls) // 2] if ppls else None,
        "non_ascii": sum(a["non_ascii"] for a in answers) / n,
    }


def _paired(x: list[bool], y: list[bool]) -> dict[str, Any]:
    from l2v_hub.measure.stats import compare, mcnemar_power

    c = compare(x, y, "control")
    n = len(x)
    discordant = max((c.won + c.lost) / n, 0.10)
    return {"won": c.won, "lost": c.lost, "p": c.p_value, "ci": [c.ci_low, c.ci_high],
            "power10": mcnemar_power(n, discordant, 0.10)}


def report(args: argparse.Namespace) -> None:
    rows = done_rows()
    questions = {p.id: p.question for p in builtin_problems("heldout", None)}
    out: dict[str, Any] = {"rows": list(rows.values()), "readable_ppl": READABLE_PPL}
    summaries = {k: _summary(r, questions) for k, r in rows.items()}
    table = []
    for key, row in rows.items():
        if row["kind"] != "pack":
            continue
        ckey = "control" + key[len("pack"):]
        if ckey not in rows:
            continue
        ukey = f"unpatched/n{row['n_problems']}"
        flags = {k: [a["reasons"] and _readable(a) for a in rows[k]["answers"]]
                 for k in (key, ckey, ukey)}
        table.append({
            "key": key, "source": row["source"], "recipe": row["recipe"], "keep": row["keep"],
            "positions": row["positions"], "strength": row["strength"], "n": row["n"],
            "pack": summaries[key], "control": summaries[ckey],
            "neutral_ppl": [row["neutral_ppl"], rows[ckey]["neutral_ppl"]],
            "vs_control": _paired(flags[key], flags[ckey]),
            "vs_unpatched": _paired(flags[key], flags[ukey]),
        })
    out["table"] = table
    out["summaries"] = summaries
    check_file = WORK / "check.json"
    out["check"] = json.loads(check_file.read_text()) if check_file.is_file() else None
    Path(args.json).write_text(json.dumps(out, indent=1))
    blocks = {"own": markdown([t for t in table if t["source"] == "0.5b"]),
              "transfer": markdown([t for t in table if t["source"] != "0.5b"]),
              "baselines": baselines(summaries, rows)}
    doc = Path(args.doc)
    text = doc.read_text(encoding="utf-8")
    for name, block in blocks.items():
        begin, end = f"<!-- reasoning:{name} -->", f"<!-- /reasoning:{name} -->"
        head, rest = text.split(begin)
        text = f"{head}{begin}\n{block}\n{end}{rest.split(end, 1)[1]}"
    doc.write_text(text, encoding="utf-8")
    print("\n\n".join(blocks.values()))
    plot([t for t in table if t["source"] == "0.5b"])


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def baselines(summaries: dict[str, Any], rows: dict[str, Any]) -> str:
    lines = ["| row | prompt | n | opens reasoning | readable | both | median answer ppl | "
             "neutral ppl |", "|---|---|---|---|---|---|---|---|"]
    for key in sorted(k for k in summaries if k.startswith(("unpatched", "reference"))):
        s, r = summaries[key], rows[key]
        lines.append(f"| {key.split('/')[0]} | {r['regime']} | {r['n']} | {s['reasons']:.2f} | "
                     f"{s['readable']:.2f} | {s['reasons_readable']:.2f} | "
                     f"{_fmt(s['median_ppl'], 1)} | {r['neutral_ppl']:.2f} |")
    return "\n".join(lines)


def markdown(table: list[dict[str, Any]]) -> str:
    lines = ["| source | recipe | keep | positions | λ | n | opens reasoning: pack / control | "
             "and readable: pack / control | p (vs control) | power (10 pts) | readable pack / "
             "control | median answer ppl pack / control | non-ASCII pack | neutral ppl pack / "
             "control |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in sorted(table, key=lambda t: (t["source"], t["recipe"], t["keep"], t["positions"],
                                           t["strength"])):
        p, c = t["pack"], t["control"]
        lines.append(
            f"| {t['source']} | {t['recipe']} | {t['keep']} | {t['positions']} | {t['strength']:g} "
            f"| {t['n']} | {_fmt(p['reasons'])} / {_fmt(c['reasons'])} "
            f"| {_fmt(p['reasons_readable'])} / {_fmt(c['reasons_readable'])} "
            f"| {t['vs_control']['p']:.2g} | {t['vs_control']['power10']:.2f} "
            f"| {_fmt(p['readable'])} / {_fmt(c['readable'])} "
            f"| {_fmt(p['median_ppl'], 1)} / {_fmt(c['median_ppl'], 1)} | {_fmt(p['non_ascii'], 3)} "
            f"| {t['neutral_ppl'][0]:.2f} / {t['neutral_ppl'][1]:.2f} |")
    return "\n".join(lines)


def plot(table: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    series: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for t in table:
        series.setdefault((t["source"], t["recipe"], t["keep"], t["positions"]), []).append(t)
    for (source, recipe, keep, positions), ts in sorted(series.items()):
        if len(ts) < 2:
            continue
        ts.sort(key=lambda t: t["strength"])
        xs = [t["strength"] for t in ts]
        label = f"{source} {recipe} {keep} {positions}"
        line = axes[0].plot(xs, [t["pack"]["reasons_readable"] for t in ts], "o-", label=label)[0]
        axes[0].plot(xs, [t["control"]["reasons_readable"] for t in ts], "x--", color=line.get_color())
        axes[1].plot(xs, [t["pack"]["median_ppl"] for t in ts], "o-", color=line.get_color())
        axes[1].plot(xs, [t["control"]["median_ppl"] for t in ts], "x--", color=line.get_color())
        axes[2].plot(xs, [t["neutral_ppl"][0] for t in ts], "o-", color=line.get_color())
        axes[2].plot(xs, [t["neutral_ppl"][1] for t in ts], "x--", color=line.get_color())
    titles = ("opens reasoning & readable (o pack, x random)", "median answer perplexity "
              "(unpatched reader)", "neutral-text perplexity")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("λ (units of the 0.5B's own CoT norm)")
        ax.set_title(title, fontsize=9)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


if __name__ == "__main__":
    main()
