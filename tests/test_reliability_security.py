"""Security: no code-running deserialisers in the package, tokens never printed or logged, no
remote code unless asked, and only the files a pack names are ever fetched."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import transformers
from click.testing import CliRunner
from conftest import random_pack
from hubserver import TEST_TOKEN, HubServer
from huggingface_hub import CommitOperationAdd, HfApi
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.builder.llm import load_llm
from l2v_hub.builder.target import read_target
from l2v_hub.cli import main
from l2v_hub.hub import pull

PACKAGE = Path(l2v_hub.__file__).parent
REPO = "l2v-test/tiny-pack"
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
BANNED_CALLS = {"eval", "exec", "compile", "__import__"}


def findings(source: str, name: str = "<source>") -> list[str]:
    """Every use of a code-running deserialiser, eval/exec, or remote code turned on, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"{where}: imports {m}" for m in modules if (m or "").split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "torch" and node.attr == "load":
                found.append(f"{where}: torch.load")
            if node.value.id in BANNED_MODULES:
                found.append(f"{where}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in BANNED_CALLS:
                found.append(f"{where}: {node.func.id}()")
            for kw in node.keywords:
                if kw.arg == "weights_only" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is True
                ):
                    found.append(f"{where}: weights_only not True")
                if kw.arg == "trust_remote_code" and isinstance(kw.value, ast.Constant) and kw.value.value:
                    found.append(f"{where}: trust_remote_code=True")
    return found


def test_the_scanner_finds_what_it_looks_for() -> None:
    bad = """
import pickle
from dill import loads
import torch
torch.load(f, weights_only=False)
eval("1")
exec("x = 1")
AutoModel.from_pretrained(name, trust_remote_code=True)
"""
    assert len(findings(bad)) == 7, findings(bad)
    assert findings("import json\njson.loads('1')\nload(x, trust_remote_code=False)") == []


def test_the_package_uses_no_pickle_torch_load_eval_exec_or_remote_code() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 10
    problems = [f for path in sources for f in findings(path.read_text(), str(path))]
    assert problems == []


def _remote_code_values(tree: ast.AST) -> list[ast.expr]:
    """What the code passes as trust_remote_code: as a keyword or as a dict key."""
    values = [n.value for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "trust_remote_code"]
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            values += [
                v for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "trust_remote_code"
            ]
    return values


def test_remote_code_is_never_turned_on_implicitly() -> None:
    # Wherever the package passes trust_remote_code, it is the user's own flag or False.
    seen = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        for value in _remote_code_values(ast.parse(path.read_text())):
            seen += 1
            assert isinstance(value, ast.Name | ast.Subscript) or (
                isinstance(value, ast.Constant) and value.value is False
            ), f"{path}:{value.lineno}: {ast.unparse(value)}"
    assert seen > 0  # the builder does load models
    defaults = [
        inspect.signature(f).parameters["trust_remote_code"].default
        for f in (load_llm, read_target)
    ]
    assert defaults == [False, False]


def test_load_llm_passes_trust_remote_code_false_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "llm"
    tiny_llama().save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    seen: list[object] = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        real = cls.from_pretrained.__func__

        def spy(klass: type, *args: object, _real: object = real, **kwargs: object) -> object:
            seen.append(kwargs.get("trust_remote_code", "absent"))
            return _real(klass, *args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_llm(folder)
    assert seen == [False, False]
    load_llm(folder, trust_remote_code=True)  # only when the caller asks
    assert seen[2:] == [True, True]


# --- tokens --------------------------------------------------------------------------------------


def test_the_token_is_never_printed_or_logged(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # HF_TOKEN holds TEST_TOKEN (the hub fixture): every request below authenticates with it.
    folder = str(random_pack().save_pretrained(tmp_path / "pack"))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"schema_version": 1, "entries": []}))
    hub.fail("commit", status=500)  # error and retry paths print and log too
    hub.fail("info", status=401)
    commands = [
        ["publish", folder, "--repo", REPO, "--json"],
        ["publish", folder, "--repo", REPO],
        ["pull", REPO, "--json"],
        ["pull", f"{REPO}@v9.9.9"],
        ["pull", "l2v-test/none"],
        ["list", "tiny/vlm", "--json"],
        ["search", "tiny/vlm"],
        ["registry", "add", f"{REPO}@v1.0.0", "--index", str(index)],
    ]
    out = []
    with caplog.at_level(logging.DEBUG):
        for args in commands:
            result = CliRunner().invoke(main, ["--debug", *args])
            out += [result.output, repr(result.exception)]
    assert any("pulled" in o or "v1.0.0" in o for o in out)  # the commands did run
    assert "Authorization" in caplog.text or "HTTP Request" in caplog.text  # and logged requests
    for text in [*out, caplog.text]:
        assert TEST_TOKEN not in text
        assert TEST_TOKEN[3:] not in text  # not even without its "hf_" prefix


def test_the_token_is_not_in_the_output_of_a_debug_run_in_a_fresh_process(
    hub: HubServer, tmp_path: Path
) -> None:
    # A real process: --debug turns on DEBUG logging of every library to stderr (under pytest,
    # logging is already configured and click's runner captures less).
    folder = str(random_pack().save_pretrained(tmp_path / "pack"))
    runs = [["publish", folder, "--repo", REPO], ["pull", REPO], ["pull", "l2v-test/none"]]
    code = (
        "import sys; from l2v_hub.cli import main\n"
        f"for args in {runs!r}:\n"
        "    try: main(['--debug', *args])\n"
        "    except BaseException as exc: print(repr(exc), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "DEBUG" in run.stderr and "PackNotFoundError" in run.stderr  # all three ran, loudly
    assert TEST_TOKEN not in run.stdout + run.stderr


# --- only the named files ------------------------------------------------------------------------


def test_only_the_files_pack_json_names_are_requested(hub: HubServer, tmp_path: Path) -> None:
    folder = random_pack().save_pretrained(tmp_path / "pack")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    extra = {"evil.pkl": b"\x80\x04K\x01.", "model.bin": b"x" * 4000, "sub/run.py": b"print(1)"}
    api = HfApi()
    api.create_repo(REPO)
    ops = [CommitOperationAdd(n, data) for n, data in {**files, **extra}.items()]
    api.create_tag(REPO, tag="v1.0.0", revision=api.create_commit(REPO, ops, commit_message="x").oid)
    hub.reset_counts()
    pulled = pull(REPO)
    asked = {path.split("?")[0] for kinds, _, path, _ in hub.log if {"resolve", "download"} & set(kinds)}
    named = {p for p in asked if "/resolve/" in p}
    assert {p.rsplit("/resolve/", 1)[1].split("/", 1)[1] for p in named} == set(files)
    assert not any(name in path for path in asked for name in extra)
    assert sorted(p.name for p in pulled.folder.iterdir()) == sorted(files)
