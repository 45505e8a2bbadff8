"""``l2v-hub inspect``: verify a pack and summarise it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..card import calibration_lines, read_phrase
from ..pack import METADATA_FILE, Pack, _is_repo_id

__all__ = ["inspect"]


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else "n/a"


def _diagnostics(stats: dict[str, Any] | None) -> str:
    """The builder's diagnostics at the source blocks the default target blocks read (all blocks:
    --json and --plot)."""
    if not stats or not isinstance(stats.get("layers"), list):
        return ""
    rows = {row.get("block"): row for row in stats["layers"] if isinstance(row, dict)}
    blocks = [b for b in stats.get("default_source_blocks") or [] if b in rows]
    lines = [f"\n  stats:     {len(rows)} source blocks of diagnostics (all: --json, --plot)"
             + ("; at the source blocks the defaults read:" if blocks else "")]
    lines += [f"\n    source block {b}: separation {_number(rows[b].get('separation'), '.3g')}, "
              f"dispersion {_number(rows[b].get('dispersion'), '.3g')}, energy in band "
              f"{_number(rows[b].get('energy_in_band'), '.1%')}" for b in blocks]
    return "".join(lines)


def _summary(pack: Pack) -> str:
    s, t, m, h, d = pack.source, pack.target, pack.method, pack.hook, pack.defaults
    norms = _diagnostics(pack.stats)
    keep = "none" if m.lowpass_keep is None else f"{m.lowpass_keep} bins"
    if pack.scale is None:
        scale = "format v1 (push relative to each token's norm): not applied; l2v-hub calibrate converts it"
    elif pack.scale.values is None:
        scale = f"{pack.scale.measure}, measured on the model at patch time (not calibrated)"
    else:
        shown = ", ".join(f"{i}: {pack.scale.values[i]:.4g}" for i in d.layers)
        scale = f"{pack.scale.measure}, stored; at the default blocks {shown}"
    calibration = "\n    ".join(calibration_lines(pack))
    return (
        f"{pack.name} v{pack.version} (created {pack.created}, l2v-hub {pack.l2v_hub_version})\n"
        f"  target:    {t.model_id} [{t.model_type}] hidden {t.hidden_size}, {t.num_layers} blocks\n"
        f"  source:    {s.model_id} [{s.model_type}] hidden {s.hidden_size}, {s.num_layers} blocks\n"
        f"  method:    {m.name}, {m.extraction} at {read_phrase(m.token)}, low-pass {keep}, "
        f"{m.resample} resampling, {m.layer_map} layer map\n"
        f"  pairs:     {m.pairs.count} from {m.pairs.source} (sha256 {m.pairs.sha256[:12]})\n"
        f"  hook:      {h.op} on {h.site}, positions {h.positions}\n"
        f"  push:      strength x s_i x v_i; s_i {scale}\n"
        f"  defaults:  strength {d.strength:g} on blocks {list(d.layers)}" + norms
        + f"\n  calibration:\n    {calibration}"
    )


def _path_or_ref(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if Path(value).is_dir() or _is_repo_id(value.partition("@")[0]):
        return value
    raise click.BadParameter(f"no pack folder at {value!r}, and it is not a Hub reference org/name[@revision]")


def _load(path: str) -> tuple[Pack, dict[str, Any]]:
    """The verified pack and its pack.json (``files`` included), from a folder or the Hub."""
    if Path(path).is_dir():
        folder = Path(path)
        pack = Pack.from_pretrained(folder)
    else:
        from ..hub import parse_ref, pull

        pulled = pull(*parse_ref(path))
        pack, folder = pulled.pack, pulled.folder
    return pack, json.loads((folder / METADATA_FILE).read_bytes())  # verified just above


@click.command()
@click.argument("path", metavar="PATH", callback=_path_or_ref)
@click.option("--json", "as_json", is_flag=True,
              help="Print the pack's metadata as JSON (pack.json, its files and the stats).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the pack's diagnostics to this image file (needs the 'plot' extra).",
)
def inspect(path: str, as_json: bool, plot: Path | None) -> None:
    """Verify the pack at PATH (a folder, or org/name[@revision] on the Hub) and summarise it."""
    pack, meta = _load(path)
    if plot is not None:
        from ..builder.plot import plot_pack

        plot_pack(pack, plot)
    if as_json:
        click.echo(json.dumps({**pack.metadata(), "files": meta["files"], "stats": pack.stats},
                              indent=2))
    else:
        click.echo(_summary(pack) + (f"\n  plot:      {plot}" if plot is not None else ""))
