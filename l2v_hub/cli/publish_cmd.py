"""``l2v-hub publish``: publish a pack folder as an immutable version, to the Hub or a store."""

from __future__ import annotations

import json

import click

from ..errors import ArgumentError
from ..hub import publish as publish_pack
from ..hub import suggest_repo_name
from ..hub.publish import check_publish_args
from ..pack import Pack
from .common import json_option, store_option, version_arg


def _repo_arg(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            check_publish_args(value, None)
        except ArgumentError as exc:
            raise click.BadParameter(str(exc)) from None
    return value

__all__ = ["publish"]


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option(
    "--repo", "repo_id", metavar="ORG/NAME", callback=_repo_arg,
    help="Repo to publish to (proposed when missing).",
)
@click.option(
    "--version", metavar="X.Y.Z", callback=version_arg,
    help="Publish under this version instead of the pack's own.",
)
@click.option(
    "--private", is_flag=True, help="Create the repo as private (when it does not exist)."
)
@click.option(
    "--create-pr", is_flag=True, help="Open a pull request instead of committing to main."
)
@store_option
@json_option("the release")
def publish(
    folder: str,
    repo_id: str | None,
    version: str | None,
    private: bool,
    create_pr: bool,
    store: str | None,
    as_json: bool,
) -> None:
    """Publish the pack in FOLDER: one commit with its files, tagged v{version}.

    The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT selects another Hub.
    """
    if create_pr and store:
        raise click.UsageError("--create-pr needs the Hub: a store has no pull requests")
    if not repo_id:
        name = suggest_repo_name(Pack.from_pretrained(folder))
        raise click.UsageError(f"missing --repo; suggested: --repo YOUR_ORG/{name}")
    release = publish_pack(
        folder, repo_id, version=version, private=private, create_pr=create_pr, store=store
    )
    if not release.released:  # a pull request: no tag, so no version was released
        if as_json:
            click.echo(json.dumps({"repo_id": release.repo_id, "version": release.version,
                                   "released": False, "pr_url": release.pr_url,
                                   "pr_commit": release.commit}))
        else:
            click.echo(f"opened {release.pr_url} for {release.repo_id} v{release.version}; not "
                       "released yet: once it is merged, run this publish again to tag it")
    elif as_json:
        click.echo(json.dumps({"repo_id": release.repo_id, "version": release.version,
                               "commit": release.commit}))
    else:
        click.echo(f"published {release}")
