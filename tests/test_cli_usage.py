"""CLI conventions: every command refuses a bad value with exit 2 before any work, in well under
a second; pull takes a model id; registry add writes your own registry; publish --create-pr does
not report a release."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import random_pack
from hubserver import HubServer

from l2v_hub.cli import main
from l2v_hub.hub import next_step

# One bad value (or more) for every command; "{tmp}" is a scratch folder, "{pack}" a valid pack.
BAD = {
    "build": [
        ["--llm", "org/llm", "--target", "org/vlm", "--out", "{tmp}/out", "--version", "banana"],
        ["--llm", "org/llm", "--target", "org/vlm", "--out", "{tmp}/out", "--layers", "1,x"],
        ["--llm", "org/llm", "--target", "org/vlm", "--out", "{tmp}/out", "--pairs", "{tmp}/no.jsonl"],
        ["--llm", "org/llm", "--target", "org/vlm", "--out", "{tmp}/out", "--llm-id", "../up"],
        ["--llm", "org/llm", "--target", "org/vlm", "--out", "{tmp}/out", "--keep", "0"],
    ],
    "calibrate": [
        ["{pack}", "--model", "org/m", "--out", "{tmp}/o", "--budget", "0"],
        ["{pack}", "--model", "org/m", "--out", "{tmp}/o", "--grid", "1,0.5"],
        ["{pack}", "--model", "org/m", "--out", "{tmp}/o", "--version", "banana"],
        ["{pack}", "--model", "org/m", "--out", "{tmp}/o", "--model-id", "../up"],
        ["{tmp}/missing", "--model", "org/m", "--out", "{tmp}/o"],
    ],
    "compare-samples": [
        ["--unpatched", "{tmp}/missing", "--pack", "{pack}", "--metric", "correct"],
        ["--unpatched", "{pack}", "--pack", "{pack}", "--metric", "correct", "--seed", "-1"],
        ["--unpatched", "{pack}", "--pack", "{pack}"],
    ],
    "eval": [
        ["--model", "org/m", "--prompt", "bogus"],
        ["--model", "org/m", "--problems", "{tmp}/missing.jsonl"],
        ["--model", "org/m", "--strength", "11"],
        ["--model", "org/m", "--limit", "0"],
        ["--model", "org/m", "--pack", "../up"],
        ["--model", "org/m", "--model-id", "../up"],
        ["--model", "org/m", "--control", "shuffled"],
    ],
    "export": [
        ["{pack}", "--format", "onnx", "--out", "{tmp}/cv.gguf"],
        ["{pack}", "--format", "llama.cpp", "--out", "{tmp}/cv.gguf", "--strength", "nan"],
        ["{pack}", "--format", "llama.cpp", "--out", "{tmp}/cv.gguf", "--layers", "0,1"],
        ["{pack}", "--format", "llama.cpp", "--out", "{tmp}/no/cv.gguf"],
        ["{pack}", "--format", "llama.cpp", "--out", "{pack}/pack.json"],
        ["{tmp}/missing", "--format", "llama.cpp", "--out", "{tmp}/cv.gguf"],
    ],
    "import": [
        ["{tmp}/missing.gguf", "--model-id", "org/m", "--out", "{tmp}/o"],
        ["{pack}/pack.json", "--model-id", "../up", "--out", "{tmp}/o"],
        ["{pack}/pack.json", "--model-id", "org/m", "--out", "{tmp}/o", "--version", "banana"],
        ["{pack}/pack.json", "--model-id", "org/m", "--out", "{tmp}/o", "--num-layers", "0"],
    ],
    "inspect": [["{tmp}/missing"]],
    "list": [["../up"], ["--registry", "{tmp}/missing.json"]],
    "publish": [
        ["{pack}", "--repo", "badname"],
        ["{pack}", "--repo", "org/name", "--version", "banana"],
        ["{pack}", "--repo", "org/name", "--create-pr", "--store", "{tmp}/store"],
    ],
    "pull": [["foo"], ["org/name@banana"], ["org/name@main"]],
    "search": [["../up"]],
    "registry add": [["foo"], ["org/name@banana"]],
    "registry push": [["--index", "{tmp}/missing.json"], ["--index", "{pack}/pack.json", "--repo", "../up"]],
    "registry validate": [["--index", "{tmp}/missing.json"]],
}


def leaf_commands(command: click.Command, path: str = "") -> list[str]:
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        return [leaf for name in command.list_commands(ctx)
                for leaf in leaf_commands(command.get_command(ctx, name), f"{path} {name}".strip())]
    return [path]


def snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_every_command_refuses_a_bad_value_with_exit_2_before_any_work(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sorted(BAD) == sorted(leaf_commands(main))  # a new command needs its bad values here
    work = tmp_path / "work"
    pack = random_pack().save_pretrained(work / "pack")
    monkeypatch.chdir(work)
    before, requests = snapshot(tmp_path), sum(hub.counts.values())
    for command, cases in BAD.items():
        for case in cases:
            args = [*command.split(), *(a.format(tmp=work, pack=pack) for a in case)]
            start = time.perf_counter()
            result = CliRunner().invoke(main, args)
            seconds = time.perf_counter() - start
            assert result.exit_code == 2, (args, result.output)
            assert "Traceback" not in result.output and "Error: " in result.output, args
            assert seconds < 1.0, (args, seconds)
    assert snapshot(tmp_path) == before  # nothing written: no pack, no store, no registry
    assert sum(hub.counts.values()) == requests  # nothing asked of the Hub


def test_registry_add_writes_your_registry_and_pull_takes_a_model_id(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("L2V_HUB_REGISTRY", raising=False)
    monkeypatch.setenv("L2V_HUB_INDEX_REPO", "l2v-test/no-index")
    assert CliRunner().invoke(main, ["publish", str(random_pack().save_pretrained(tmp_path / "p")),
                                     "--repo", "l2v-test/tiny"]).exit_code == 0
    added = CliRunner().invoke(main, ["registry", "add", "l2v-test/tiny@v1.0.0"])
    mine = tmp_path / "xdg-config" / "l2v-hub" / "registry.json"  # conftest's XDG_CONFIG_HOME
    assert added.exit_code == 0, added.output
    assert added.output.startswith(f"{mine}: tiny/vlm <- l2v-test/tiny@v1.0.0")
    assert not (tmp_path / "registry").exists()
    assert [e["repo_id"] for e in json.loads(mine.read_text())["entries"]] == ["l2v-test/tiny"]

    pulled = CliRunner().invoke(main, ["pull", "tiny/vlm", "--json"])  # a model id
    assert pulled.exit_code == 0, pulled.output
    row = json.loads(pulled.stdout)
    assert row["repo_id"] == "l2v-test/tiny" and row["found_in"] == f"user registry {mine}"
    assert row["commit"] == hub.head("l2v-test/tiny", "v1.0.0")
    missing = CliRunner().invoke(main, ["pull", "other/vlm"])
    assert missing.exit_code == 1 and "is not a pack repo" in missing.output
    # The next step comes last (issue 20), not inside parentheses in the middle.
    assert missing.output.rstrip().endswith(next_step("other/vlm")), missing.output


def test_eval_and_export_take_the_strengths_patch_takes(tmp_path: Path, hf_offline: Path) -> None:
    """One range, l2v_hub.loader.check_strength's: eval refused negative ones that patch takes."""
    pack = random_pack().save_pretrained(tmp_path / "pack")
    out = tmp_path / "cv.gguf"
    exported = CliRunner().invoke(main, ["export", str(pack), "--format", "llama.cpp", "--out",
                                         str(out), "--strength", "-0.5", "--layers", "1"])
    assert exported.exit_code == 0 and out.is_file(), exported.output
    # Past the option checks: what fails is loading the model (offline, nothing cached), exit 1.
    evaluated = CliRunner().invoke(main, ["eval", "--model", "org/m", "--strength", "-0.5"])
    assert evaluated.exit_code == 1 and "org/m" in evaluated.output, evaluated.output
    for command in (["eval", "--model", "org/m"],
                    ["export", str(pack), "--format", "llama.cpp", "--out", str(tmp_path / "x.gguf")]):
        refused = CliRunner().invoke(main, [*command, "--strength", "10.5"])
        assert refused.exit_code == 2, refused.output
        assert "within [-10, 10] (in units of s_i" in refused.output
        assert "paper" not in refused.output  # 0.1-0.9 was lambda of format v1, not of v2


def test_publish_with_create_pr_does_not_report_a_release(hub: HubServer, tmp_path: Path) -> None:
    folder = str(random_pack().save_pretrained(tmp_path / "p"))
    assert CliRunner().invoke(main, ["publish", folder, "--repo", "l2v-test/tiny"]).exit_code == 0
    result = CliRunner().invoke(main, ["publish", folder, "--repo", "l2v-test/tiny", "--version",
                                       "1.1.0", "--create-pr", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["released"] is False and "/discussions/" in row["pr_url"] and "commit" not in row
    assert hub.head("l2v-test/tiny", "v1.1.0") is None  # no tag: nothing was released
