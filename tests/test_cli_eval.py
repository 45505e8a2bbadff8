"""``l2v-hub eval`` end to end on a tiny random VLM folder (a Qwen2 LM wrapped as LLaVA-OneVision by
l2v_hub.demo.vlm, with its processor and chat template), a pack folder and image problems drawn
by l2v_hub.demo.image_problems: the JSON, the report files, resuming, text rows beside image
rows, and the errors a user meets (a malformed problems file, a bad option)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from conftest import random_pack
from PIL import Image
from test_demo_vlm import tiny_qwen2
from tiny_llm import byte_tokenizer
from transformers import AutoProcessor

from l2v_hub.cli import main
from l2v_hub.cli.eval_cmd import eval_cmd
from l2v_hub.demo.image_problems import make_image_problems
from l2v_hub.demo.vlm import save_vlm
from l2v_hub.measure import load_problems
from l2v_hub.measure.prompts import encode

MEASURES = ("accuracy", "step_by_step", "answer_tokens", "truncated", "non_ascii", "perplexity",
            "correct", "n", "comparisons", "power")
pytestmark = pytest.mark.filterwarnings("ignore:cannot tell which model this is")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds contention
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli-eval")
    model = save_vlm(tiny_qwen2(), byte_tokenizer(chat_template=True), "llava_onevision",
                     root / "vlm", model_id="test/tiny-vlm")
    pack = random_pack(32, 2, target_id="test/tiny-vlm", model_type="llava_onevision", scale=4.0)
    pack.save_pretrained(root / "pack")
    problems = make_image_problems(root / "images", count=5, seed=0, size=128)
    # The same five, plus two text-only rows, in a second file beside the first.
    mixed = problems.with_name("mixed.jsonl")
    mixed.write_text(problems.read_text() + json.dumps(
        {"id": "text-1", "question": "What is 3 plus 4?", "answer": 7}) + "\n" + json.dumps(
        {"id": "text-2", "question": "Pick the even one.", "choices": ["3", "8"], "answer": "B"})
        + "\n", encoding="utf-8")
    return {"root": root, "model": model, "pack": root / "pack", "problems": problems,
            "mixed": mixed}


def invoke(*args: str | Path):
    result = CliRunner().invoke(main, ["eval", *map(str, args)])
    return result


def base_args(setup: dict[str, Path], problems: str = "problems") -> list[str | Path]:
    return ["--model", setup["model"], "--pack", setup["pack"], "--problems", setup[problems],
            "--max-new-tokens", "4", "--quiet"]


def test_help_documents_every_option() -> None:
    result = CliRunner().invoke(main, ["eval", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    options = [o for p in eval_cmd.params for o in [*p.opts, *p.secondary_opts] if o.startswith("--")]
    assert len(options) >= 20
    for option in options:
        assert option in text, option
    for issue in ("--model", "--pack", "--problems", "--strength", "--control", "--prompt",
                  "--limit", "--json", "--out"):
        assert issue in options
    # every option has words of its own, not just its name
    for p in eval_cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.help, p.name
    assert "random|none" in text and "plain|direct|cot" in text


def test_json_on_a_tiny_vlm_with_image_problems(setup: dict[str, Path]) -> None:
    result = invoke(*base_args(setup), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {r["name"]: r for r in data["rows"]}
    assert list(rows) == ["unpatched", "pack 0.1", "random 0.1", "cot prompt"]
    assert [r["kind"] for r in data["rows"]] == ["unpatched", "pack", "control", "reference"]
    for r in data["rows"]:
        assert all(m in r for m in MEASURES), r["name"]
        assert r["n"] == 5 and "answers" not in r
    assert rows["random 0.1"]["strength"] == rows["pack 0.1"]["strength"] == 0.1
    assert rows["random 0.1"]["layers"] == rows["pack 0.1"]["layers"] == [1]
    assert [c["against"] for c in rows["pack 0.1"]["comparisons"]] == ["unpatched", "random 0.1"]
    assert all(0 <= c["p_value"] <= 1 for r in data["rows"] for c in r["comparisons"])
    assert rows["pack 0.1"]["perplexity"] > 0 and rows["cot prompt"]["perplexity"] is None
    config = data["config"]
    assert config["problems"]["count"] == config["problems"]["with_images"] == 5
    assert config["model_class"] == "LlavaOnevisionForConditionalGeneration"
    assert config["packs"] == ["tiny-pack@1.0.0"] and config["prompt"] == "plain"


def test_image_rows_go_through_the_processor_and_its_chat_template(setup: dict[str, Path]) -> None:
    processor = AutoProcessor.from_pretrained(setup["model"])
    problems = load_problems(setup["mixed"])
    images = encode(processor, problems[:2], "plain")
    token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert "pixel_values" in images and images["pixel_values"].shape[0] == 2
    assert bool((images["input_ids"] == token).any(dim=1).all())  # every row holds its image
    text = encode(processor, problems[5:], "plain")
    assert "pixel_values" not in text and not bool((text["input_ids"] == token).any())
    assert bool(text["attention_mask"][:, -1].all())


def test_out_writes_the_report_and_a_rerun_resumes(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke(*base_args(setup, "mixed"), "--out", out)
    assert result.exit_code == 0, result.output
    assert "unpatched" in result.stdout and "random 0.1" in result.stdout
    assert f"report: {out / 'report.md'}" in result.stdout
    data = json.loads((out / "report.json").read_text())
    assert data["config"]["problems"] | {"sha256": None} == {
        "source": str(setup["mixed"]), "count": 7, "with_images": 5, "sha256": None}
    for r in data["rows"]:
        assert [a["id"] for a in r["answers"]] == [*(f"image-000{i}" for i in range(1, 6)),
                                                   "text-1", "text-2"]
        assert all(isinstance(a["text"], str) for a in r["answers"])
    md = (out / "report.md").read_text()
    assert "| unpatched |" in md and "| random 0.1 |" in md and "McNemar" in md
    with Image.open(out / "report.png") as png:
        assert png.format == "PNG"
    lines = (out / "answers.jsonl").read_text().splitlines()
    assert len(lines) == 4 * 7 + 3  # an answer per row and problem, a perplexity per steered row

    again = invoke(*base_args(setup, "mixed"), "--out", out, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["config"]["resumed"] == 4 * 7
    assert (out / "answers.jsonl").read_text().splitlines() == lines


def test_strengths_control_prompt_and_limit(setup: dict[str, Path]) -> None:
    result = invoke(*base_args(setup), "--strength", "0.5", "--strength", "2", "--control", "none",
                    "--prompt", "direct", "--no-reference", "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["name"], r["strength"], r["regime"]) for r in data["rows"]] == [
        ("unpatched", None, "direct"), ("pack 0.5", 0.5, "direct"), ("pack 2", 2.0, "direct")]
    assert all(r["n"] == 3 for r in data["rows"])
    assert data["config"]["problems"]["source"].endswith("[3 evenly spaced]")


def test_a_malformed_problems_file_exits_1_naming_line_and_field(setup: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "What is 1 plus 1?", "answer": 2}\n'
                   '{"question": "Which?", "answer": "C", "choices": ["1", "2"]}\n', encoding="utf-8")
    result = invoke(*base_args(setup)[:4], "--problems", bad)
    assert result.exit_code == 1
    assert "bad.jsonl, line 2, field answer" in result.output
    assert "Traceback" not in result.output
    # Checked before the model is loaded: a model that does not exist is not reached.
    result = invoke("--model", tmp_path / "no-model", "--problems", bad)
    assert result.exit_code == 1 and "line 2, field answer" in result.output


@pytest.mark.parametrize("args", [
    ["--prompt", "bogus"],
    ["--control", "shuffled"],
    ["--limit", "0"],
    ["--strength", "11"],
    ["--problems", "missing.jsonl"],
    ["--pack", "not a ref"],
])
def test_a_bad_option_exits_2(setup: dict[str, Path], args: list[str]) -> None:
    result = invoke(*base_args(setup), *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
