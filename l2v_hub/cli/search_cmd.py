"""``l2v-hub search``: Hub discovery of packs that list a model as their base model."""

from __future__ import annotations

import click

from ..hub import open_source
from ..hub.source import highest_version, version_key
from .common import echo_rows, json_option, model_id_arg, store_option

__all__ = ["search"]


@click.command()
@click.argument("model_id", callback=model_id_arg)
@store_option
@json_option("the packs found")
def search(model_id: str, store: str | None, as_json: bool) -> None:
    """Find packs for MODEL_ID on the Hub (not reviewed: check one, then `registry add` it).

    `l2v_hub.patch(model)` applies none of these unless discovery is allowed
    (L2V_HUB_ALLOW_DISCOVERY=1, or allow_discovery=True).
    """
    source = open_source(store)
    found = []
    for repo in source.discover(model_id):
        versions = source.versions(repo)
        found.append(
            {
                "repo_id": repo,
                "latest": highest_version(versions),
                "versions": sorted(versions, key=version_key, reverse=True),
            }
        )
    echo_rows(
        found,
        as_json,
        empty=f"no pack on {source.where} lists {model_id} as its base model",
        line=lambda f: (f"{f['repo_id']}  latest v{f['latest']}  ({len(f['versions'])} "
                        f"version{'' if len(f['versions']) == 1 else 's'})"),
    )
