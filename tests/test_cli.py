"""The click CLI: --version, inspect, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from l2v_hub import Pack, __version__
from l2v_hub.cli import main


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_help_everywhere() -> None:
    runner = CliRunner()
    for args in (["--help"], ["inspect", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_inspect_summary_and_json(pack: Pack, tmp_path: Path) -> None:
    folder = pack.save_pretrained(tmp_path / "p")
    runner = CliRunner()
    text = runner.invoke(main, ["inspect", str(folder)])
    assert text.exit_code == 0, text.output
    assert "tiny/vlm" in text.output and "norm_preserving_add" in text.output
    data = runner.invoke(main, ["inspect", str(folder), "--json"])
    assert data.exit_code == 0
    assert json.loads(data.output) == pack.metadata()


def test_inspect_broken_pack_is_exit_1_with_one_line(pack: Pack, tmp_path: Path) -> None:
    folder = pack.save_pretrained(tmp_path / "p")
    (folder / "directions.safetensors").write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["inspect", str(folder)])
    assert result.exit_code == 1
    assert "directions.safetensors" in result.output
    assert "Traceback" not in result.output


def test_usage_error_is_exit_2() -> None:
    assert CliRunner().invoke(main, ["inspect"]).exit_code == 2
    assert CliRunner().invoke(main, ["no-such-command"]).exit_code == 2
