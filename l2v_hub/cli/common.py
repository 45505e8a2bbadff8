"""What the commands share: the ``--store`` and ``--json`` options, argument checks that turn a
bad value into a usage error (exit 2) before any work, and printing rows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import PackError
from ..metadata import _SEMVER, check_model_id

__all__ = ["block_list", "echo_rows", "json_option", "model_id_arg", "pack_arg", "pack_ref_arg",
           "store_option", "strength_arg", "version_arg"]

store_option = click.option(
    "--store",
    metavar="PATH",
    envvar="L2V_HUB_STORE",
    help="Use a local store instead of the Hub (env L2V_HUB_STORE).",
)


def json_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--json``: print ``what`` as JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")


def model_id_arg(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A Hub id ``org/name`` (click callback)."""
    if value is None:
        return None
    try:
        return check_model_id(value)
    except PackError as exc:
        raise click.BadParameter(str(exc)) from None


def pack_ref_arg(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[str, str | None] | None:
    """``org/name[@revision]`` as ``(repo_id, revision)`` (click callback)."""
    from ..hub import parse_ref  # the Hub client loads only for the commands that use it

    if value is None:
        return None
    try:
        return parse_ref(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def pack_arg(ctx: click.Context, param: click.Parameter, value: str) -> str | tuple[str, str | None]:
    """A pack folder (kept as a path), else a Hub reference ``org/name[@revision]`` (click callback)."""
    return value if Path(value).is_dir() else pack_ref_arg(ctx, param, value)  # type: ignore[return-value]


def block_list(minimum: int = 0, why: str = "") -> Callable[..., tuple[int, ...] | None]:
    """A click callback for comma-separated block indices ``>= minimum``, like ``12,13,14``;
    ``why`` explains the minimum in the error."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        try:
            layers = tuple(int(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter(f"expected comma-separated block indices like 12,13,14, got "
                                     f"{value!r}") from None
        if not layers or min(layers) < minimum:
            raise click.BadParameter(f"expected block indices >= {minimum} like 12,13,14{why}, got "
                                     f"{value!r}")
        return layers

    return parse


def strength_arg(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
    """A strength (or a tuple of them, for a repeated option) in the one range ``l2v_hub.patch``
    accepts (``l2v_hub.loader.check_strength``); click callback for a FLOAT option."""
    from ..errors import ArgumentError
    from ..loader import check_strength

    try:
        if isinstance(value, tuple):
            return tuple(check_strength(v) for v in value)
        return None if value is None else check_strength(value)
    except ArgumentError as exc:
        raise click.BadParameter(str(exc)) from None


def version_arg(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A semantic version ``1.2.0`` (a leading ``v`` is accepted)."""
    if value is not None and not _SEMVER.match(value.removeprefix("v")):
        raise click.BadParameter(f"expected a semantic version like 1.2.0, got {value!r}")
    return value


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
