"""The ``l2v-hub`` command line: one click group, a subcommand per module of this package.

Exit codes: 0 success, 1 failure (one line on stderr), 2 usage error. Every argument is checked
before any work, so a bad value costs nothing; ``--debug`` works before or after the subcommand.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from .._version import __version__
from ..errors import ArgumentError, L2VHubError, clip
from .build_cmd import build
from .calibrate_cmd import calibrate
from .compare_cmd import compare_samples_cmd
from .eval_cmd import eval_cmd
from .inspect_cmd import inspect
from .interop_cmd import export, import_cmd
from .list_cmd import list_packs
from .publish_cmd import publish
from .pull_cmd import pull
from .registry_cmd import registry
from .search_cmd import search

__all__ = ["main"]

_DEBUG = "l2v_hub.debug"
_DEBUG_HELP = "Show tracebacks and debug logging."


def _logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if debug:  # also when basicConfig already ran (--debug given after the subcommand)
        logging.getLogger().setLevel(logging.DEBUG)


def _debug_after(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[_DEBUG] = True  # meta is shared by the whole context chain
        _logging(True)


class _Group(click.Group):
    """Turns every error into a one-line message and exit code 1 (``--debug``: the traceback);
    click's own usage errors and the API's ``ArgumentError`` are exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.meta.get(_DEBUG):
                raise
            if isinstance(exc, ArgumentError):
                raise click.UsageError(str(exc)) from None
            if isinstance(exc, L2VHubError):
                raise click.ClickException(str(exc)) from None
            # A bug, or an error of a library (huggingface_hub, httpx, the OS) nobody expected.
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {clip(exc, 200)} (run with --debug for the "
                "traceback)"
            ) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="l2v-hub")
@click.option("--debug", is_flag=True, help=_DEBUG_HELP)
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Build, share and apply L2V-CoT chain-of-thought steering packs."""
    ctx.meta[_DEBUG] = debug
    _logging(debug)


def _with_debug(command: click.Command) -> click.Command:
    """``--debug`` on ``command`` and its subcommands too: users add it after the subcommand."""
    command.params.append(
        click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_debug_after, help=_DEBUG_HELP)
    )
    for sub in getattr(command, "commands", {}).values():
        _with_debug(sub)
    return command


for _command in (inspect, build, calibrate, eval_cmd, compare_samples_cmd, export, import_cmd,
                 publish, pull, list_packs, search, registry):
    main.add_command(_with_debug(_command))
