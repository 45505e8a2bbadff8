"""``l2v-hub inspect``: verify a pack and summarise it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..card import calibration_lines
from ..pack import Pack

__all__ = ["inspect"]


def _summary(pack: Pack) -> str:
    s, t, m, h, d = pack.source, pack.target, pack.method, pack.hook, pack.defaults
    norms = ""
    if pack.stats and isinstance(pack.stats.get("layers"), list):
        norms = f"\n  stats:     {len(pack.stats['layers'])} source blocks of diagnostics"
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
        f"  method:    {m.name}, {m.extraction} at the {m.token} token, low-pass {keep}, "
        f"{m.resample} resampling, {m.layer_map} layer map\n"
        f"  pairs:     {m.pairs.count} from {m.pairs.source} (sha256 {m.pairs.sha256[:12]})\n"
        f"  hook:      {h.op} on {h.site}, positions {h.positions}\n"
        f"  push:      strength x s_i x v_i; s_i {scale}\n"
        f"  defaults:  strength {d.strength:g} on blocks {list(d.layers)}" + norms
        + f"\n  calibration:\n    {calibration}"
    )


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the pack's metadata as JSON.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the pack's diagnostics to this image file (needs the 'plot' extra).",
)
def inspect(path: str, as_json: bool, plot: Path | None) -> None:
    """Verify the pack at PATH and print a summary of it."""
    pack = Pack.from_pretrained(path)
    if plot is not None:
        from ..builder.plot import plot_pack

        plot_pack(pack, plot)
    if as_json:
        click.echo(json.dumps(pack.metadata(), indent=2))
    else:
        click.echo(_summary(pack) + (f"\n  plot:      {plot}" if plot is not None else ""))
