"""``l2v-hub pull``: download and verify a pack release, from the Hub or a store."""

from __future__ import annotations

import json

import click

from ..hub import parse_ref
from ..hub import pull as pull_pack
from .common import json_option, store_option

__all__ = ["pull"]


@click.command()
@click.argument("ref", metavar="ORG/NAME[@REVISION]")
@store_option
@json_option("the release and its folder")
def pull(ref: str, store: str | None, as_json: bool) -> None:
    """Pull the pack REF: the highest version by default, or @v1.2.0, or @<commit sha>.

    Every file is verified; the folder printed is in the Hugging Face cache (or the store).
    """
    repo_id, revision = parse_ref(ref)
    pulled = pull_pack(repo_id, revision, store=store)
    if as_json:
        r = pulled.release
        click.echo(
            json.dumps(
                {
                    "repo_id": r.repo_id,
                    "version": r.version,
                    "commit": r.commit,
                    "pack_sha256": pulled.pack_sha256,
                    "folder": str(pulled.folder),
                }
            )
        )
    else:
        click.echo(f"pulled {pulled.release} from {pulled.where}\n{pulled.folder}")
