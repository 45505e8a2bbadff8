"""Printing what a command found: JSON with ``--json``, else one line per row."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

__all__ = ["echo_rows"]


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
