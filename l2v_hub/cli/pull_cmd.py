"""``l2v-hub pull``: download and verify a pack release, by pack reference or by model id."""

from __future__ import annotations

import json

import click

from ..errors import PackNotFoundError
from ..hub import PulledPack, find_pack, load_curated, load_user
from ..hub import pull as pull_pack
from .common import json_option, pack_ref_arg, store_option

__all__ = ["pull"]


def _registered(model_id: str) -> bool:
    return any(r is not None and r.for_target(model_id) for r in (load_user(), load_curated()))


def _resolve(repo_id: str, revision: str | None, store: str | None, accept_moved_tag: bool,
             allow_discovery: bool | None) -> tuple[PulledPack, str | None]:
    """A pack repo, or a model id resolved as ``l2v_hub.patch(model)`` does: a model with a
    registry entry is a model; otherwise a pack repo, and failing that, a model id again."""
    def by_model() -> tuple[PulledPack, str]:
        found = find_pack(repo_id, store=store, allow_discovery=allow_discovery)
        return found.pulled, found.found_in

    if revision is not None:
        return pull_pack(repo_id, revision, store=store, accept_moved_tag=accept_moved_tag), None
    if _registered(repo_id):
        return by_model()
    try:
        return pull_pack(repo_id, None, store=store, accept_moved_tag=accept_moved_tag), None
    except PackNotFoundError as as_pack:
        try:
            return by_model()
        except PackNotFoundError as as_model:
            # The model's message last: it ends with the next step.
            raise PackNotFoundError(
                f"'{repo_id}' is not a pack repo ({as_pack}), nor a model with a registered pack: "
                f"{as_model}"
            ) from None


@click.command()
@click.argument("ref", metavar="ORG/NAME[@REVISION]", callback=pack_ref_arg)
@click.option("--accept-moved-tag", is_flag=True,
              help="Accept a version tag that now points to another commit than when first pulled.")
@click.option("--allow-discovery/--no-allow-discovery", default=None,
              help="For a model id: apply an unreviewed pack found on the Hub "
                   "(env L2V_HUB_ALLOW_DISCOVERY).")
@store_option
@json_option("the release and its folder")
def pull(ref: tuple[str, str | None], accept_moved_tag: bool, allow_discovery: bool | None,
         store: str | None, as_json: bool) -> None:
    """Pull the pack REF: a pack repo (the highest version by default, or @v1.2.0, or
    @<commit sha>), or a model id, resolved as `l2v_hub.patch(model)` resolves it.

    Every file is verified; the folder printed is in the Hugging Face cache (or the store).
    """
    pulled, found_in = _resolve(*ref, store, accept_moved_tag, allow_discovery)
    r = pulled.release
    if as_json:
        row = {"repo_id": r.repo_id, "version": r.version, "commit": r.commit,
               "pack_sha256": pulled.pack_sha256, "folder": str(pulled.folder),
               "from": pulled.where}
        click.echo(json.dumps({**row, "model_id": ref[0], "found_in": found_in} if found_in else row))
    else:
        model = f" for model {ref[0]} ({found_in})" if found_in else ""
        click.echo(f"pulled {r}{model} from {pulled.where}\n{pulled.folder}")
