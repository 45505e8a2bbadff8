"""What the Hub commands share: the ``--store`` and ``--json`` options, and printing rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

__all__ = ["echo_rows", "json_option", "store_option"]

store_option = click.option(
    "--store",
    metavar="PATH",
    envvar="L2V_HUB_STORE",
    help="Use a local store instead of the Hub (env L2V_HUB_STORE).",
)


def json_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json``: print ``what`` as JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def echo_rows(
    rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str], empty: str
) -> None:
    """``rows`` as a JSON list, or each through ``line``; ``empty`` when there are none."""
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(empty)
    for row in [] if as_json else rows:
        click.echo(line(row))
