"""``l2v-hub calibrate``: measure a pack on its target model and write a calibrated new version."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import click

from ..errors import L2VHubError
from ..metadata import READS
from .common import model_id_arg, pack_arg, version_arg

__all__ = ["calibrate", "calibration_options", "problem_count", "run_calibration"]


def _strengths(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        grid = tuple(float(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected ascending positive numbers like 0.25,0.5,1, got {value!r}") from None
    if not grid or grid[0] <= 0 or any(b <= a for a, b in itertools.pairwise(grid)):
        raise click.BadParameter(f"expected ascending positive numbers like 0.25,0.5,1, got {value!r}")
    return grid


def _deprecated_problems(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    if value is not None:
        click.echo("warning: --problems is deprecated here (in eval it names a problems file); use "
                   "--calibration-problems", err=True)
    return value


def problem_count(options: dict[str, Any]) -> int:
    """--calibration-problems, or its deprecated name --problems; both with different values is a
    usage error."""
    new, old = options["problem_count"], options["old_problem_count"]
    if old is not None and new not in (20, old):  # 20: the default, i.e. not given
        raise click.UsageError(f"--problems {old} and --calibration-problems {new} disagree; give "
                               "--calibration-problems only")
    return new if old is None else old


def calibration_options(f: Any) -> Any:
    """The options ``calibrate`` and ``build --calibrate`` share."""
    for option in reversed([
        click.option("--criterion", type=click.Choice(["behaviour", "perplexity"]), default="behaviour",
                     show_default=True, help="behaviour: the smallest strength whose short answers open with "
                     "reasoning significantly more often than under the random control, readable, and whose "
                     "accuracy under a CoT prompt stays within --accuracy-margin of unpatched (else it falls "
                     "back to perplexity, saying why); perplexity: the largest strength within --budget."),
        click.option("--budget", type=click.FloatRange(min=0, min_open=True, max=10), default=0.10,
                     show_default=True, help="Allowed rise of the neutral-text perplexity (0.10: +10%; the perplexity criterion)."),
        click.option("--grid", callback=_strengths, help="Strengths to sweep, in units of s_i, ascending [default: "
                     "behaviour 0.25,0.5,1,2; perplexity 1/128 to 8, factor sqrt 2]."),
        click.option("--calibration-problems", "problem_count", type=click.IntRange(1, 50), default=20,
                     show_default=True,
                     help="Builtin calibration problems answered per row (unpatched, pack, random control)."),
        click.option("--problems", "old_problem_count", type=click.IntRange(1, 50), callback=_deprecated_problems,
                     help="Deprecated name of --calibration-problems (eval's --problems is a file)."),
        click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True,
                     help="Token budget of the recorded rows (unpatched, pack, random control)."),
        click.option("--guard-tokens", type=click.IntRange(min=1), default=400, show_default=True,
                     help="Token budget of the behaviour criterion's accuracy guard (CoT prompt): long enough "
                     "that the unpatched model finishes, or truncation is blamed on the pack."),
        click.option("--accuracy-margin", type=click.FloatRange(0, 1), default=0.10, show_default=True,
                     help="Largest fall of the CoT accuracy (0.10: 10 points) the accuracy guard allows."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the random control."),
    ]):
        f = option(f)
    return f


def run_calibration(pack: Any, model: Any, tokenizer: Any, options: dict[str, Any], model_id: str | None,
                    version: str | None) -> Any:
    """``l2v_hub.calibrate`` with the shared options."""
    from ..calibrate import calibrate as run
    from ..measure import builtin_problems

    count = problem_count(options)
    return run(pack, model, tokenizer, criterion=options["criterion"], budget=options["budget"],
               grid=options["grid"],
               problems=None if count == 20 else builtin_problems("calibration", count),
               problems_source=f"builtin-calibration[:{count}]",
               read=options.get("read"), max_new_tokens=options["max_new_tokens"],
               guard_tokens=options["guard_tokens"], accuracy_margin=options["accuracy_margin"],
               seed=options["seed"], version=version,
               model_id=model_id, progress=not options.get("quiet", False))


def summary(pack: Any) -> dict[str, Any]:
    """What a calibration decided, as JSON data."""
    c = pack.calibration
    return {"name": pack.name, "version": pack.version, "model_id": c.model_id,
            "strength": c.strength, "positions": c.positions, "criterion": c.criterion,
            "reason": c.reason,
            "behaviour": None if c.behaviour is None else c.to_json()["behaviour"],
            "baseline": c.baseline.__dict__, "pack": c.pack.__dict__, "control": c.control.__dict__,
            "cosine_own": c.cosine_own}


@click.command()
@click.argument("pack_ref", metavar="PACK", callback=pack_arg)
@click.option("--model", "model_path", required=True, help="Target model: Hub id, local folder or .gguf file (its weights are loaded).")
@click.option("--model-id", callback=model_id_arg, help="Hub id to record for a local --model.")
@click.option("--gguf-file", help="GGUF file name inside --model.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the calibrated version.")
@click.option("--version", "version", callback=version_arg, help="Version of the calibrated pack [default: the next minor version].")
@click.option("--read", type=click.Choice(READS), help="How the calibration pairs are read for s_i and the own direction (see l2v-hub build --read) [default: as the pack's directions were read, else last].")
@calibration_options
@click.option("--device", help="Device for the model, e.g. cpu, cuda.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), help="Model dtype.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Cache of dequantized GGUF models.")
@click.option("--overwrite", is_flag=True, help="Replace a pack already at --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print what was measured and decided as JSON.")
def calibrate(pack_ref: str | tuple[str, str | None], model_path: str, **options: Any) -> None:
    """Measure PACK (a folder or org/name[@revision]) on its target --model and write a new,
    calibrated version to --out: s_i, the default strength and positions policy (by --criterion:
    the behaviour a CoT pack exists to change against its random control, or the neutral-text
    perplexity budget), and the random control beside it.
    A v1 pack comes out as v2."""
    from ..builder import load_model
    from ..pack import Pack

    out: Path = options["out"]
    problem_count(options)  # both names of the option given, and disagreeing: a usage error now
    if out.exists() and any(out.iterdir()) and not options["overwrite"]:
        raise L2VHubError(f"--out '{out}' exists and is not empty; pass --overwrite to replace it")
    if isinstance(pack_ref, str):
        pack = Pack.from_pretrained(pack_ref)
    else:
        from ..hub import pull

        pack = pull(*pack_ref).pack
    model, tokenizer = load_model(model_path, gguf_file=options["gguf_file"], device=options["device"],
                                  dtype=options["dtype"], cache_dir=options["cache_dir"])
    version = options["version"].removeprefix("v") if options["version"] else None
    new = run_calibration(pack, model, tokenizer, options, options["model_id"], version)
    new.save_pretrained(out)
    if options["as_json"]:
        click.echo(json.dumps({"path": str(out), **summary(new)}, indent=2))
        return
    c = new.calibration
    click.echo(f"wrote {new.name} v{new.version} to {out}\n  default strength {c.strength:g}, "
               f"positions {c.positions}: {c.reason}\n  perplexity unpatched {c.baseline.perplexity:.4g}, "
               f"pack {c.pack.perplexity:.4g}, random control {c.control.perplexity:.4g}")
