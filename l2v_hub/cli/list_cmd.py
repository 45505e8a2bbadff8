"""``l2v-hub list``: the packs the registries know, for one model or all."""

from __future__ import annotations

import click

from ..hub import load_curated, load_user
from .common import echo_rows, json_option, model_id_arg

__all__ = ["list_packs"]


@click.command("list")
@click.argument("model_id", required=False, callback=model_id_arg)
@click.option(
    "--registry",
    metavar="FILE",
    envvar="L2V_HUB_REGISTRY",
    type=click.Path(exists=True, dir_okay=False),
    help="Your own registry (env L2V_HUB_REGISTRY, else ~/.config/l2v-hub/registry.json).",
)
@json_option("the entries")
def list_packs(model_id: str | None, registry: str | None, as_json: bool) -> None:
    """List registered packs (your registry first, then the curated index), for MODEL_ID or all."""
    rows = []
    for reg in (load_user(registry), load_curated()):
        if reg is None:
            continue
        entries = reg.for_target(model_id) if model_id else reg.entries
        rows += [{**e.to_json(), "registry": reg.origin} for e in entries]
    echo_rows(
        rows,
        as_json,
        empty=f"no registered pack{' for ' + model_id if model_id else ''} (try: l2v-hub search MODEL_ID)",
        line=lambda r: (
            f"{r['target']}  <-  {r['repo_id']}@v{r['version']} ({r['commit'][:12]}) from "
            f"{r['source']}{' *recommended' if r['recommended'] else ''}  [{r['registry']}]"
        ),
    )
