"""``l2v-hub eval``: measure a pack on a model against unpatched, a random control and the
explicit chain-of-thought prompt (``l2v_hub.evaluate``; docs/eval.md)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ..metadata import POSITIONS
from .common import model_id_arg, pack_arg, strength_arg

__all__ = ["eval_cmd"]


def _problems(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value != "builtin" and not Path(value).is_file():
        raise click.BadParameter(f"expected 'builtin' or a JSONL file, got {value!r} (no such file)")
    return value


def _packs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[str | None]:
    """Each pack as ``evaluate`` takes it (None: auto), checked like every pack argument."""
    for v in values:
        if v != "auto":
            pack_arg(ctx, param, v)
    return [None if v == "auto" else v for v in values or ("auto",)]


@click.command("eval")
@click.option("--model", "model_path", required=True,
              help="Model: Hub id, local folder or .gguf file (a VLM's processor is loaded too).")
@click.option("--model-id", callback=model_id_arg,
              help="Hub id of a local --model: finds its pack for --pack auto, and is recorded.")
@click.option("--pack", "packs", multiple=True, callback=_packs, metavar="REF|auto",
              help="Pack folder, org/name[@revision], or auto (the pack a registry names for the "
                   "model's id) [default: auto]. Repeat to compare packs.")
@click.option("--problems", default="builtin", show_default=True, callback=_problems,
              help="builtin (the held-out set shipped in the package) or a FILE.jsonl "
                   "(question, answer, optional image, choices; docs/eval.md).")
@click.option("--strength", "strengths", type=float, multiple=True, callback=strength_arg,
              help="Strength in units of s_i, -10 to 10 as l2v_hub.patch takes it; repeat for "
                   "several [default: the pack's own].")
@click.option("--control", type=click.Choice(["random", "none"]), default="random",
              show_default=True, help="The control row beside each pack row.")
@click.option("--prompt", type=click.Choice(["plain", "direct", "cot"]), default="plain",
              show_default=True, help="plain: the question; direct: final answer only (the "
                                      "paper's non-CoT baseline); cot: think step by step.")
@click.option("--reference/--no-reference", default=True, show_default=True,
              help="Add the unpatched row asked with the explicit step-by-step prompt.")
@click.option("--positions", type=click.Choice(POSITIONS),
              help="Positions the pack steers [default: the pack's own].")
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate N problems, evenly spaced.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Token budget of each answer (greedy); one that reaches it counts as truncated.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Problems answered together (left-padded batches).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random control and of the bootstrap.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md, report.json (every answer), report.png and the "
                   "answers kept as they come: rerun with the same --out to resume.")
@click.option("--device", help="Device for the model, e.g. cpu, cuda.")
@click.option("--device-map", help="Passed to transformers, e.g. auto to spread the model over GPUs.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="Model dtype.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Cache of dequantized GGUF models.")
@click.option("--trust-remote-code", is_flag=True, help="Run the model repo's own code (off unless given).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as JSON (without the answers' texts: those are in --out).")
def eval_cmd(model_path: str, packs: list[Any], **o: Any) -> None:
    """Answer --problems with --model unpatched, with each pack, with a random-direction control
    of the same strength, blocks, op and positions, and with the explicit step-by-step prompt;
    print accuracy, won/lost, McNemar's exact p, a paired bootstrap 95% interval, step-by-step
    share, answer length, truncation and neutral-text perplexity per row."""
    from ..builder import load_model, load_processor
    from ..evaluation import evaluate, select_problems

    # A malformed problems file fails here, not after minutes of loading the model.
    select_problems(o["problems"], o["limit"])
    model, tokenizer = load_model(model_path, device=o["device"], dtype=o["dtype"],
                                  device_map=o["device_map"], cache_dir=o["cache_dir"],
                                  trust_remote_code=o["trust_remote_code"])
    processor = load_processor(model_path, tokenizer, model, o["trust_remote_code"])
    report = evaluate(
        model, processor, packs, o["problems"],
        strengths=o["strengths"] or None, control=o["control"], positions=o["positions"],
        prompt=o["prompt"], reference=o["reference"], max_new_tokens=o["max_new_tokens"],
        batch_size=o["batch_size"], seed=o["seed"], limit=o["limit"], out=o["out"],
        model_id=o["model_id"], progress=not o["quiet"],
        # Run from a shell (not through click's test runner): the report keeps the command.
        command=("l2v-hub eval " + shlex.join(sys.argv[sys.argv.index("eval") + 1:])
                 if "eval" in sys.argv else None))
    if o["as_json"]:
        click.echo(json.dumps(report.to_json(answers=False), indent=1))
        return
    click.echo(report.table())
    if o["out"] is not None:
        click.echo(f"report: {o['out'] / 'report.md'}")
