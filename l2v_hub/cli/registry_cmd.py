"""``l2v-hub registry``: curate an index: add a pinned pack, validate, push the Hub copy."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..hub import push_index, register
from ..hub.registry import REGISTRY_ENV, Registry, index_repo, load_shipped, user_registry_path
from .common import json_option, model_id_arg, pack_ref_arg, store_option

__all__ = ["registry"]


@click.group()
def registry() -> None:
    """Curate a registry index: your own (the default), or the curated one (--index FILE)."""


@registry.command()
@click.argument("ref", metavar="ORG/NAME[@VERSION]", callback=pack_ref_arg)
@click.option(
    "--index",
    "index",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Index file to edit (default: your registry: ${REGISTRY_ENV}, else "
    "~/.config/l2v-hub/registry.json).",
)
@click.option("--recommended", is_flag=True, help="Make it the recommended pack for its target.")
@click.option("--notes", default="", help="Free text shown with the entry.")
@store_option
@json_option("the entry written and the index file")
def add(ref: tuple[str, str | None], index: Path | None, recommended: bool, notes: str,
        store: str | None, as_json: bool) -> None:
    """Verify the pack REF and pin its commit and pack.json sha256 in the index."""
    # Never a path relative to the working directory by default: a stray ./registry/index.json
    # would be consulted by nothing. Your registry is what l2v_hub.patch(model) reads first.
    index = index or user_registry_path()
    entry = register(index, *ref, store=store, recommended=recommended, notes=notes)
    if as_json:
        click.echo(json.dumps({"index": str(index), "entry": entry.to_json()}, indent=2))
        return
    click.echo(
        f"{index}: {entry.target} <- {entry.repo_id}@v{entry.version} (commit {entry.commit[:12]}) "
        f"pack.json sha256 {entry.pack_sha256[:12]}"
    )


@registry.command()
@click.option(
    "--index",
    "index",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Index file to check (default: the copy shipped with l2v-hub).",
)
@json_option("the result (origin, entries)")
def validate(index: Path | None, as_json: bool) -> None:
    """Check an index against the registry schema (an invalid one: exit 1, naming the field)."""
    reg = Registry.load(index) if index else load_shipped()
    if as_json:
        click.echo(json.dumps({"origin": reg.origin, "valid": True,
                               "entries": [e.to_json() for e in reg.entries]}, indent=2))
        return
    count = len(reg.entries)
    click.echo(f"{reg.origin}: valid, {count} {'entry' if count == 1 else 'entries'}")


@registry.command()
@click.option(
    "--index",
    "index",
    metavar="FILE",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Index file to publish, e.g. registry/index.json.",
)
@click.option(
    "--repo", "repo_id", metavar="ORG/NAME", callback=model_id_arg,
    help="Dataset repo (default: $L2V_HUB_INDEX_REPO).",
)
@json_option("the result")
def push(index: Path, repo_id: str | None, as_json: bool) -> None:
    """Publish the index as the curated index's Hub copy (a dataset repo)."""
    repo = repo_id or index_repo()
    commit = push_index(index, repo)
    if as_json:
        click.echo(json.dumps({"repo_id": repo, "commit": commit}))
    else:
        click.echo(f"pushed {index} to dataset {repo} (commit {commit[:12]})")
