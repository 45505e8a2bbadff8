"""docs/cli.md, generated from the click commands themselves so that it cannot drift.

``python -m l2v_hub.cli.reference > docs/cli.md`` rewrites it; tests/test_cli_reference.py checks
that the file equals what :func:`render` gives.
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from . import main

__all__ = ["render"]

# A fixed width: the terminal's would make the text depend on who generated it.
_WIDTH = 100

_HEADER = """# CLI reference

Generated from the commands' own `--help` by `python -m l2v_hub.cli.reference > docs/cli.md`;
a test checks that this file is up to date. Exit codes: 0 success, 1 failure (one line on stderr,
`--debug` shows the traceback), 2 usage error. Commands whose output is data take `--json`.
"""


def _walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[str, str]]:
    yield ctx.command_path, command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                yield from _walk(sub, click.Context(sub, info_name=name, parent=ctx, terminal_width=_WIDTH))


def render() -> str:
    """The Markdown reference: every command's and subcommand's ``--help``, in order."""
    root = click.Context(main, info_name="l2v-hub", terminal_width=_WIDTH, **main.context_settings)
    parts = [_HEADER]
    for path, text in _walk(main, root):
        parts.append(f"\n## `{path}`\n\n```text\n{text}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    click.echo(render(), nl=False)
