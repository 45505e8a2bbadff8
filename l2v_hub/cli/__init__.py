"""The ``l2v-hub`` command line: one click group, a subcommand per module of this package.

Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .._version import __version__
from ..errors import L2VHubError
from .build_cmd import build
from .calibrate_cmd import calibrate
from .inspect_cmd import inspect
from .list_cmd import list_packs
from .publish_cmd import publish
from .pull_cmd import pull
from .registry_cmd import registry
from .search_cmd import search

__all__ = ["main"]


class _Group(click.Group):
    """Turns every error into a one-line message and exit code 1 (``--debug``: the traceback);
    click's own usage errors stay exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get("l2v_hub.debug"):
                raise
            if isinstance(exc, L2VHubError):
                raise click.ClickException(str(exc)) from None
            # A bug, or an error of a library (huggingface_hub, httpx, the OS) nobody expected.
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {first} (run with --debug for the traceback)"
            ) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="l2v-hub")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Build, share and apply L2V-CoT chain-of-thought steering packs."""
    ctx.meta["l2v_hub.debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


main.add_command(inspect)
main.add_command(build)
main.add_command(calibrate)
main.add_command(publish)
main.add_command(pull)
main.add_command(list_packs)
main.add_command(search)
main.add_command(registry)
