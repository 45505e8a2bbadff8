"""``l2v-hub export`` (a pack as a llama.cpp control vector) and ``l2v-hub import`` (a control
vector as a pack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import L2VHubError
from .common import block_list, model_id_arg, pack_arg, strength_arg, version_arg

__all__ = ["export", "import_cmd"]

SEMANTIC_LINE = ("llama.cpp adds the vector at every position with no norm preservation: the file "
                 "equals the pack under op=add, positions=all, not under the pack's own op and "
                 "positions.")


def _out(overwrite_flag: str) -> Any:
    def check(ctx: click.Context, _param: click.Parameter, value: Path) -> Path:
        if not value.parent.is_dir():
            raise click.BadParameter(f"folder '{value.parent}' does not exist")
        if value.exists() and not ctx.params.get(overwrite_flag):
            raise click.BadParameter(f"'{value}' exists; pass --overwrite to replace it")
        return value
    return check


@click.command()
@click.argument("pack_ref", metavar="PACK", callback=pack_arg)
@click.option("--format", "fmt", type=click.Choice(["llama.cpp"]), required=True,
              help="llama.cpp: a control-vector GGUF for --control-vector.")
@click.option("--overwrite", is_flag=True, is_eager=True, help="Replace an existing --out file.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              callback=_out("overwrite"), help="The .gguf file to write.")
@click.option("--strength", type=float, callback=strength_arg, help="lambda baked into the file, in units of s_i, -10 to 10 [default: the pack's].")
@click.option("--layers", callback=block_list(1, ' (llama.cpp never steers block 0)'), help="Blocks to export, 0-based, from 1, e.g. 7,8,9 [default: the pack's].")
@click.option("--model", "model_path", help="Target model (Hub id, folder or .gguf), to measure s_i of a pack that is not calibrated.")
@click.option("--gguf-file", help="GGUF file name inside --model.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Cache of dequantized GGUF models.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written, kept and lost as JSON.")
def export(pack_ref: Any, fmt: str, out: Path, model_path: str | None, **options: Any) -> None:
    """Write PACK (a folder or org/name[@revision]) as a llama.cpp control vector
    (llama-server --control-vector FILE).

    \b
    Semantics: llama.cpp adds the vector at every position with no norm preservation: the file equals the pack under op=add, positions=all, not under the pack's own op and positions.

    direction.N is added to the output of block N (0-based, block 0 never), as the pack's layers.N.
    """
    from ..interop import export_control_vector
    from ..pack import Pack

    if isinstance(pack_ref, str):
        pack = Pack.from_pretrained(pack_ref)
    else:
        from ..hub import pull

        pack = pull(*pack_ref).pack
    model = tokenizer = None
    if pack.scale is not None and pack.scale.values is None:
        if model_path is None:
            raise click.UsageError(
                f"pack {pack.name!r} is not calibrated: its s_i is measured on the target model, "
                f"so the export needs --model ({pack.target.model_id}), or calibrate the pack first")
        from ..builder import load_model

        model, tokenizer = load_model(model_path, gguf_file=options["gguf_file"],
                                      cache_dir=options["cache_dir"])
    report = export_control_vector(pack, out, strength=options["strength"], layers=options["layers"],
                                   model=model, tokenizer=tokenizer)
    if options["as_json"]:
        click.echo(json.dumps({"path": str(report.path), "format": fmt, "pack": pack.name,
                               "version": pack.version, "target": pack.target.model_id,
                               "layers": list(report.layers), "strength": report.strength,
                               "scale_origin": report.scale_origin, "keeps": list(report.keeps),
                               "loses": list(report.loses)}, indent=2))
        return
    click.echo(f"wrote {report.path}: {pack.name} v{pack.version} for {pack.target.model_id}, "
               f"direction.{{{','.join(map(str, report.layers))}}}, strength {report.strength:g} "
               f"(s_i from the {report.scale_origin})")
    for line in report.keeps:
        click.echo(f"  keeps: {line}")
    for line in report.loses:
        click.echo(f"  loses: {line}")


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model-id", callback=model_id_arg, help="Hub id of the model the vector steers [default: the one an l2v-hub export records].")
@click.option("--num-layers", type=click.IntRange(min=1), help="The model's text block count [default: recorded by l2v-hub, else the highest direction.N + 1].")
@click.option("--model-type", help="The model's model_type [default: the file's controlvector.model_hint].")
@click.option("--name", help="Pack name [default: imported-<file or pack name>].")
@click.option("--version", "version", callback=version_arg, default="1.0.0", show_default=True, help="Pack version.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder for the pack.")
@click.option("--overwrite", is_flag=True, help="Replace a pack already at --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the pack written as JSON.")
def import_cmd(file: Path, out: Path, **options: Any) -> None:
    """Turn a llama.cpp control-vector FILE (also repeng's export_gguf) into a pack: directions
    normalised, each vector's norm kept as s_i (scale.measure "imported"), strength 1,
    op=add, positions=all, provenance in method and stats.json."""
    from ..interop import import_control_vector

    if out.exists() and any(out.iterdir()) and not options["overwrite"]:
        raise L2VHubError(f"--out '{out}' exists and is not empty; pass --overwrite to replace it")
    pack = import_control_vector(file, model_id=options["model_id"], num_layers=options["num_layers"],
                                 model_type=options["model_type"], name=options["name"],
                                 version=options["version"].removeprefix("v"))
    pack.save_pretrained(out)
    layers = list(pack.defaults.layers)
    if options["as_json"]:
        click.echo(json.dumps({"path": str(out), "name": pack.name, "version": pack.version,
                               "target": pack.target.model_id, "num_layers": pack.target.num_layers,
                               "layers": layers, "filled_from_nearest":
                               pack.stats["import"]["filled_from_nearest"]}, indent=2))
        return
    click.echo(f"wrote {pack.name} v{pack.version} to {out}: {pack.target.model_id} "
               f"({pack.target.num_layers} blocks), vectors for blocks {layers}, strength 1, op add, "
               "positions all")
