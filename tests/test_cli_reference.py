"""docs/cli.md is exactly what the click commands generate, and covers every command."""

from __future__ import annotations

from pathlib import Path

import click

from l2v_hub.cli import main
from l2v_hub.cli.reference import render

CLI_MD = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_up_to_date() -> None:
    assert CLI_MD.read_text() == render(), (
        "docs/cli.md is stale: run `python -m l2v_hub.cli.reference > docs/cli.md`")


def test_every_command_and_option_is_documented() -> None:
    text = render()
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert f"## `l2v-hub {name}`" in text
        for sub in getattr(command, "commands", {}):
            assert f"## `l2v-hub {name} {sub}`" in text
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert opt in text, f"{name} {opt}"
