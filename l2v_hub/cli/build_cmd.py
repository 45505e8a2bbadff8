"""``l2v-hub build``: extract CoT directions from an LLM and write a pack for a target VLM."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..card import read_phrase
from ..errors import BuildError
from ..metadata import READS
from .calibrate_cmd import calibration_options, problem_count, run_calibration, summary
from .common import block_list, model_id_arg, version_arg

__all__ = ["build"]


def _pairs(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if value in ("builtin", "prompt-contrast") or Path(value).is_file():
        return value
    raise click.BadParameter(f"expected builtin, prompt-contrast or an existing .jsonl file; no file {value!r}")


def _check_fit(options: dict[str, Any], target: Any) -> None:
    """--layers against the target's depth, --keep against the source's width (its config only),
    before the LLM is loaded: a bad value fails in a second, as a usage error."""
    layers = options["layers"]
    if layers and max(layers) >= target.num_layers:
        raise click.BadParameter(
            f"{target.model_id} has blocks 0..{target.num_layers - 1}, got {list(layers)}", param_hint="'--layers'"
        )
    keep = options["keep"]
    if keep is None:
        return
    from ..spectral import num_bins

    hidden = _source_width(options)
    if isinstance(hidden, int) and keep > num_bins(hidden):
        raise click.BadParameter(
            f"the source has {num_bins(hidden)} frequency bins (hidden size {hidden}), got {keep}",
            param_hint="'--keep'",
        )


def _source_width(options: dict[str, Any]) -> int | None:
    """The source's hidden size from its config, or a local GGUF file's header (no weights read);
    None when neither can be read here (load_llm then reports why, in its own words)."""
    llm, gguf_file = str(options["llm"]), options["gguf_file"]
    if gguf_file or llm.endswith(".gguf"):
        from ..builder.llm import gguf_hidden_size

        path = Path(llm) / gguf_file if gguf_file else Path(llm)
        return gguf_hidden_size(path) if path.is_file() else None  # a Hub file: read once pulled
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(llm, revision=options["revision"],
                                            trust_remote_code=options["trust_remote_code"])
        return config.get_text_config().hidden_size
    except Exception:  # unreadable here: load_llm reports it with its own message
        return None


def _report(pack: Any, out: Path, seconds: float) -> dict[str, Any]:
    stats = pack.stats or {}
    by_block = {row["block"]: row for row in stats.get("layers", [])}
    blocks = stats.get("default_source_blocks", [])
    return {
        "path": str(out),
        "name": pack.name,
        "version": pack.version,
        "source": pack.source.model_id,
        "target": pack.target.model_id,
        "target_hidden_size": pack.target.hidden_size,
        "target_num_layers": pack.target.num_layers,
        "extraction": pack.method.extraction,
        "read": pack.method.token,
        "pairs": {"source": pack.method.pairs.source, "count": pack.method.pairs.count},
        "lowpass_keep": pack.method.lowpass_keep,
        "defaults": {"strength": pack.defaults.strength, "layers": list(pack.defaults.layers)},
        "separation_at_default": {str(b): by_block[b]["separation"] for b in blocks if b in by_block},
        "seconds": round(seconds, 2),
    }


@click.command()
@click.option("--llm", "llm", required=True, help="Source LLM: Hub id, local folder or .gguf file.")
@click.option("--llm-id", callback=model_id_arg, help="Hub id to record for a local --llm (a pack never records a path).")
@click.option("--gguf-file", help="GGUF file name inside --llm (a Hub repo or folder).")
@click.option("--revision", help="Revision (branch, tag or commit) of a Hub --llm.")
@click.option("--target", required=True, help="Target VLM: Hub id or local folder; only its config is read, unless --calibrate.")
@click.option("--target-id", callback=model_id_arg, help="Hub id to record for a local --target folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Pack folder to write.")
@click.option("--pairs", default="prompt-contrast", show_default=True, callback=_pairs, help="prompt-contrast (each builtin problem asked to think step by step vs to answer directly, read at the last prompt token), builtin (worked solution vs bare answer), or a FILE.jsonl of {problem, cot, direct}.")
@click.option("--generate", is_flag=True, help="Let the LLM write both answers to each problem.")
@click.option("--read", type=click.Choice(READS), default="last", show_default=True,
              help="Which states of each text are read: last (its last token), response_mean (the mean over the assistant response's tokens) or response_first (the first response token); the last two need response-style pairs (not prompt-contrast, unless --generate). --calibrate reads its pairs the same way.")
@click.option("--extraction", type=click.Choice(["mean-diff", "pca"]), default="mean-diff", show_default=True)
@click.option("--keep", type=click.IntRange(min=1), help="Low-pass bins of the source spectrum [default: every bin both sizes hold, unfiltered "
              "(docs/reasoning.md); the paper keeps 11.2% of them: l2v_hub.builder.paper_keep].")
@click.option("--layers", callback=block_list(0), help="Default target blocks, e.g. 12,13,14 [default: the 3 middle blocks].")
@click.option("--strength", type=click.FloatRange(min=0), default=0.03, show_default=True, help="Default strength, in units of s_i (replaced by --calibrate).")
@click.option("--calibrate", "calibrate_", is_flag=True, help="Load the target's weights too and calibrate the pack on it (see l2v-hub calibrate).")
@calibration_options
@click.option("--device", help="Device for the LLM, e.g. cpu, cuda, cuda:1, mps.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), help="LLM dtype.")
@click.option("--device-map", help="Passed to transformers, e.g. auto to spread a large LLM over GPUs.")
@click.option("--trust-remote-code", is_flag=True, help="Run the model repo's own code (off unless given).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--name", help="Pack name [default: l2v-cot-<source>-to-<target>].")
@click.option("--version", "version", default="0.1.0", show_default=True, callback=version_arg, help="Pack version (semver).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Cache of dequantized GGUF models [default: $L2V_HUB_CACHE or ~/.cache/l2v_hub].")
@click.option("--overwrite", is_flag=True, help="Replace a pack already at --out.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Also draw the pack's diagnostics to this image file, as inspect --plot (needs the 'plot' extra).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary of the pack.")
def build(**options: Any) -> None:
    """Extract the CoT direction of every block of --llm and write a pack for --target to --out."""
    from ..builder import build_pack, load_llm, read_target
    from ..builder.target import resolve_model_id

    out: Path = options["out"]
    if out.exists() and any(out.iterdir()) and not options["overwrite"]:
        raise BuildError(f"--out '{out}' exists and is not empty; pass --overwrite to replace it")
    if options["read"] != "last" and options["pairs"] == "prompt-contrast" and not options["generate"]:
        raise click.BadParameter(f"{options['read']} reads an assistant response; prompt-contrast pairs "
                                 "have none (the default --pairs; they are read at the last prompt token): use "
                                 "--read last, --pairs builtin (or a response-style FILE.jsonl), or --generate",
                                 param_hint="'--read'")
    problem_count(options)  # both names of the option given, and disagreeing: a usage error now
    if options["plot"] is not None:
        from ..builder.plot import require_matplotlib

        require_matplotlib()  # a missing extra fails now, not after the extraction
    start = time.perf_counter()
    if options["quiet"]:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # transformers' own "Loading weights" bars
    # Both ids and the target's config are checked before the LLM loads: a typo fails in a
    # second, not after minutes of loading.
    try:
        source_id = resolve_model_id(options["llm"], options["llm_id"], "llm")
        resolve_model_id(options["target"], options["target_id"], "target")
    except BuildError as exc:  # a local path with no id to record: the arguments are at fault
        raise click.UsageError(str(exc)) from None
    target = read_target(options["target"], model_id=options["target_id"],
                         trust_remote_code=options["trust_remote_code"])
    _check_fit(options, target)
    model, tokenizer = load_llm(
        options["llm"], gguf_file=options["gguf_file"], device=options["device"],
        dtype=options["dtype"], device_map=options["device_map"],
        trust_remote_code=options["trust_remote_code"], cache_dir=options["cache_dir"],
        revision=options["revision"],
    )
    pack = build_pack(
        model, tokenizer, target, options["pairs"],
        extraction=options["extraction"], keep=options["keep"], batch_size=options["batch_size"],
        progress=not options["quiet"], source_id=source_id,
        name=options["name"], version=options["version"], strength=options["strength"],
        layers=options["layers"], generate=options["generate"], read=options["read"],
    )
    if options["calibrate_"]:
        from ..builder import load_model

        del model  # the source's memory, before the target loads
        target_model, target_tokenizer = load_model(
            options["target"], trust_remote_code=options["trust_remote_code"],
            device=options["device"], dtype=options["dtype"], cache_dir=options["cache_dir"])
        pack = run_calibration(pack, target_model, target_tokenizer, options, target.model_id,
                               options["version"])
    pack.save_pretrained(out)
    if options["plot"] is not None:
        from ..builder.plot import plot_pack

        plot_pack(pack, options["plot"])
    report = _report(pack, out, time.perf_counter() - start)
    if pack.calibration is not None:
        report["calibration"] = summary(pack)
    if options["plot"] is not None:
        report["plot"] = str(options["plot"])
    if options["as_json"]:
        click.echo(json.dumps(report, indent=2))
        return
    separation = ", ".join(f"block {b}: {s:.2f}" for b, s in report["separation_at_default"].items())
    click.echo(
        f"wrote {pack.name} v{pack.version} to {out} in {report['seconds']:.1f} s\n"
        f"  {pack.source.model_id} ({pack.source.hidden_size}-d, {pack.source.num_layers} blocks) -> "
        f"{pack.target.model_id} ({pack.target.hidden_size}-d, {pack.target.num_layers} blocks)\n"
        f"  {pack.method.pairs.count} pairs from {pack.method.pairs.source}, {pack.method.extraction} "
        f"at {read_phrase(pack.method.token)}, "
        f"low-pass {pack.method.lowpass_keep} bins\n"
        f"  defaults: strength {pack.defaults.strength:g} on blocks {list(pack.defaults.layers)}; "
        f"separation at the source blocks they read: {separation or 'n/a'}"
        + (f"\n  plot:      {options['plot']}" if options["plot"] is not None else "")
    )
