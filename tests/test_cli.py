"""The click CLI: --version, inspect, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from l2v_hub import Pack, PackError, __version__
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
    shown = json.loads(data.output)
    on_disk = json.loads((folder / "pack.json").read_text())
    assert shown == {**pack.metadata(), "files": on_disk["files"], "stats": pack.stats}
    assert set(shown["files"]) == {"directions.safetensors", "stats.json", "README.md"}
    assert shown["stats"] == {"layers": [{"norm": 1.0}] * 4}


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


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "l2v_hub", "--version"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and f"l2v-hub, version {__version__}" in done.stdout, done.stderr


def test_debug_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    broken = tmp_path / "p"
    broken.mkdir()
    quiet = CliRunner().invoke(main, ["inspect", str(broken)])
    assert quiet.exit_code == 1 and quiet.exception is not None and "Traceback" not in quiet.output
    for args in (["--debug", "inspect", str(broken)], ["inspect", str(broken), "--debug"]):
        loud = CliRunner().invoke(main, args)
        assert loud.exit_code == 1 and isinstance(loud.exception, PackError), args
    assert CliRunner().invoke(main, ["registry", "validate", "--debug"]).exit_code == 0
