"""Every code block of README.md and docs/quickstart.md runs, as written, against a prepared world.

The world is the test Hub (tests/hubserver.py, real huggingface_hub over real HTTP) holding tiny
random stand-ins under the ids the docs use: a Qwen2-VL as ``Qwen/Qwen2-VL-2B-Instruct``, a Llama
with a chat template as ``HuggingFaceTB/SmolLM2-135M-Instruct``, a pack for the first built from
the second, and the curated index (``l2v-hub/registry``) that registers it. Python blocks of one
file run in order in one namespace; bash blocks run line by line through the CLI in a temp dir.

A block may be marked ``<!-- docs-test: not run (reason) -->`` only under a rule: every command in
it installs software or runs a make target (``pip install``, ``make``), which needs a package
index or would run the test suite inside itself. Any other block must run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import tiny_models
from click.testing import CliRunner
from hub_fixtures import hub  # noqa: F401  (the fixture)
from hubserver import HubServer
from huggingface_hub import HfApi
from tiny_llm import byte_tokenizer, tiny_llama, word_tokenizer

import l2v_hub
from l2v_hub import Pack
from l2v_hub.builder import PairSet, build_pack, builtin_pairs
from l2v_hub.cli import main
from l2v_hub.hub import Registry, load_shipped, publish, push_index, register

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/quickstart.md")
TARGET, SOURCE = "Qwen/Qwen2-VL-2B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"
CURATED = "l2v-hub/l2v-cot-smollm2-135m-instruct-to-qwen2-vl-2b-instruct"
SKIP = re.compile(r"<!-- docs-test: not run \((?P<reason>[^)]+)\) -->\s*$")
# The rule for blocks that are not run: only installation and make targets.
NOT_RUN_COMMANDS = ("pip install ", "make ")


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    lang: str
    code: str
    skip_reason: str | None


def blocks(name: str) -> list[Block]:
    lines = (ROOT / name).read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = re.match(r"^```(\w+)", lines[i])
        if fence:
            end = lines.index("```", i + 1)
            marker = SKIP.match(lines[i - 1]) if i else None
            found.append(Block(name, i + 1, fence.group(1), "\n".join(lines[i + 1 : end]) + "\n",
                               marker.group("reason") if marker else None))
            i = end
        i += 1
    return found


def commands(block: Block) -> list[str]:
    """The block's command lines, comments and blank lines left out."""
    return [c for line in block.code.splitlines() if (c := line.split("#")[0].strip())]


def _upload(api: HfApi, folder: Path, repo_id: str) -> None:
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=folder, repo_id=repo_id)


@pytest.fixture
def world(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pack:  # noqa: F811
    """The test Hub with the two models, the curated pack and index; cwd an empty folder."""
    for name in ("L2V_HUB_REGISTRY", "L2V_HUB_STORE", "L2V_HUB_INDEX_REPO"):
        monkeypatch.delenv(name, raising=False)
    api = HfApi()
    vlm = tiny_models.build("qwen2_vl")
    vlm.save_pretrained(tmp_path / "vlm")
    # A real VLM repo carries its tokenizer: patch() measures an uncalibrated pack's s_i with it,
    # and `build --calibrate` answers problems with it. Its ids stay below the image tokens.
    word_tokenizer(tiny_models.IMAGE).save_pretrained(tmp_path / "vlm")
    _upload(api, tmp_path / "vlm", TARGET)
    # As small as a Llama gets: the quick start's `l2v-hub build` runs it over all 288 pairs.
    llm, tokenizer = tiny_llama(hidden=48, layers=3, seed=1), byte_tokenizer(chat_template=True)
    llm.config._attn_implementation = "sdpa"
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    _upload(api, tmp_path / "llm", SOURCE)
    few = PairSet("builtin-first-4", "response", builtin_pairs().pairs[:4])
    pack = build_pack(llm, tokenizer, TARGET, few, source_id=SOURCE, version="1.0.0", progress=False)
    publish(pack, CURATED)
    register(tmp_path / "index.json", CURATED, recommended=True)
    push_index(tmp_path / "index.json", "l2v-hub/registry")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return pack


def run_bash(block: Block) -> None:
    for command in commands(block):
        args = shlex.split(command)
        assert args[0] == "l2v-hub", f"{block.file}:{block.line}: only l2v-hub commands run here: {command}"
        result = CliRunner().invoke(main, args[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"{block.file}:{block.line}: `{command}` failed:\n{result.output}"


def run_file(name: str) -> dict:
    namespace: dict = {"__name__": f"docs:{name}"}
    ran = 0
    for block in blocks(name):
        if block.skip_reason is not None:
            continue
        if block.lang == "python":
            exec(compile(block.code, f"{name}:{block.line}", "exec"), namespace)
        elif block.lang == "bash":
            run_bash(block)
        else:
            pytest.fail(f"{name}:{block.line}: a ```{block.lang} block cannot be run; use python or bash")
        ran += 1
    assert ran >= 2
    return namespace


@pytest.mark.parametrize("name", DOCS)
def test_not_run_blocks_follow_the_rule(name: str) -> None:
    for block in blocks(name):
        if block.skip_reason is None:
            continue
        assert block.lang == "bash", f"{name}:{block.line}: only shell blocks may be marked not run"
        for command in commands(block):
            assert command.startswith(NOT_RUN_COMMANDS), (
                f"{name}:{block.line}: `{command}` is marked not run, but only {NOT_RUN_COMMANDS} may be")


def test_readme_blocks_run(world: Pack) -> None:
    ns = run_file("README.md")
    model = ns["model"]
    assert model.name_or_path == TARGET
    assert l2v_hub.unpatch(model) == 1  # the one-line patch was applied
    built = Pack.from_pretrained("packs/smol-to-qwen2vl")
    assert (built.source.model_id, built.target.model_id, built.version) == (SOURCE, TARGET, "1.0.0")
    assert Pack.from_pretrained("my-org/l2v-cot-smollm2-to-qwen2-vl-2b") == built


def test_quickstart_blocks_run(world: Pack) -> None:
    ns = run_file("docs/quickstart.md")
    assert ns["handle"].pack == world  # resolved by the model's id through the curated index
    assert l2v_hub.unpatch(ns["model"]) == 0  # removed, and the `with` block removed its own
    entry, = Registry.load("my-packs.json").entries
    assert (entry.target, entry.repo_id, entry.version) == (
        TARGET, "my-org/l2v-cot-smollm2-to-qwen2-vl-2b", "1.0.0")
    assert Pack.from_pretrained(entry.repo_id).source.model_id == SOURCE


@pytest.mark.parametrize("name", DOCS)
def test_the_one_liner_says_plainly_that_no_pack_is_published_while_the_index_is_empty(
    name: str,
) -> None:
    """Issue 20: the README and quickstart showed the one-liner as working while the shipped
    index had no entry; while it has none, both say so where the one-liner is shown."""
    text = (ROOT / name).read_text()
    said = "**No curated pack is published yet.**" in text
    assert said == (not load_shipped().entries), name
    assert text.index("l2v_hub.patch(model)") < text.index("No curated pack") < text.index("## Build")


def test_blocks_are_found() -> None:
    readme = blocks("README.md")
    assert [b.lang for b in readme] == ["bash", "python", "bash", "bash"]
    assert readme[0].skip_reason and readme[1].skip_reason is None
