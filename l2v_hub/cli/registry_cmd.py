"""``l2v-hub registry``: curate an index: add a pinned pack, validate, push the Hub copy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..hub import parse_ref, push_index, register
from ..hub.registry import INDEX_FILE, REGISTRY_ENV, Registry, index_repo, load_shipped
from .common import json_option, store_option

__all__ = ["registry"]

_INDEX = click.option(
    "--index",
    "index",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get(REGISTRY_ENV) or f"registry/{INDEX_FILE}",
    help=f"Index file (default: ${REGISTRY_ENV}, else registry/{INDEX_FILE}).",
)


@click.group()
def registry() -> None:
    """Curate a registry index (the curated one, or your own)."""


@registry.command()
@click.argument("ref", metavar="ORG/NAME[@VERSION]")
@_INDEX
@click.option("--recommended", is_flag=True, help="Make it the recommended pack for its target.")
@click.option("--notes", default="", help="Free text shown with the entry.")
@store_option
def add(ref: str, index: Path, recommended: bool, notes: str, store: str | None) -> None:
    """Verify the pack REF and pin its commit and pack.json sha256 in the index."""
    repo_id, revision = parse_ref(ref)
    entry = register(index, repo_id, revision, store=store, recommended=recommended, notes=notes)
    click.echo(
        f"{index}: {entry.target} <- {entry.repo_id}@v{entry.version} (commit {entry.commit[:12]}) "
        f"pack.json sha256 {entry.pack_sha256[:12]}"
    )


@registry.command()
@click.option(
    "--index",
    "index",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Index file to check (default: the copy shipped with l2v-hub).",
)
def validate(index: Path | None) -> None:
    """Check an index against the registry schema."""
    reg = Registry.load(index) if index else load_shipped()
    click.echo(f"{reg.origin}: valid, {len(reg.entries)} entries")


@registry.command()
@_INDEX
@click.option(
    "--repo", "repo_id", metavar="ORG/NAME", help="Dataset repo (default: $L2V_HUB_INDEX_REPO)."
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
