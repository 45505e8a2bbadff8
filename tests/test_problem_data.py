"""The problem data `l2v-hub eval` runs on: l2v_hub/data/heldout.jsonl and the image generator.

heldout.jsonl is checked row by row against the problems schema, every answer is re-computed from
its ``solution`` expression by an evaluator written here (not the generator's), the set is shown to
share no template with the builtin contrastive pairs or problems.jsonl, and the committed file is
shown to be exactly what scripts/make_heldout.py writes. The image problems
(l2v_hub/demo/image_problems.py) are generated into a temp folder.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

from l2v_hub.builder import builtin_pairs

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "l2v_hub" / "data" / "heldout.jsonl"
CALIBRATION = ROOT / "l2v_hub" / "data" / "problems.jsonl"
LETTERS = "ABCDE"
FIELDS = {"id", "question", "answer", "choices", "image", "kind", "solution"}
# Word-level similarity (after normalising) at or above which two questions share a template.
NEAR = 0.75


def load_script(name: str) -> ModuleType:
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.FloorDiv: lambda a, b: a // b}


def solve(expression: str) -> int:
    """Evaluate an expression of integer literals, ``+ - * //`` and parentheses; nothing else."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"{expression!r}: {type(node).__name__} is not allowed")

    return walk(ast.parse(expression, mode="eval").body)


def check_row(row: object, where: str) -> int:
    """Assert ``row`` fits the problems schema; returns the value its answer stands for."""
    assert isinstance(row, dict), where
    assert set(row) <= FIELDS and {"id", "question", "answer"} <= set(row), f"{where}: {set(row)}"
    assert isinstance(row["id"], str) and row["id"], where
    assert isinstance(row["question"], str) and row["question"].strip(), where
    assert isinstance(row.get("kind", ""), str), where
    image = row.get("image", [])
    assert all(isinstance(p, str) and p for p in (image if isinstance(image, list) else [image]))
    value = solve(row["solution"])
    if "choices" in row:
        choices = row["choices"]
        assert isinstance(choices, list) and 2 <= len(choices) <= 5, where
        assert all(isinstance(c, str) and c for c in choices), where
        assert len(set(choices)) == len(choices), f"{where}: repeated choice"
        assert row["answer"] in LETTERS[: len(choices)], where
        # The question does not list the choices: eval renders them.
        assert not re.search(r"(^|\s)A[.)] ", row["question"]), where
        assert int(choices[LETTERS.index(row["answer"])]) == value, f"{where}: {row}"
        assert [int(c) for c in choices].count(value) == 1, f"{where}: two right choices"
    else:
        answer = row["answer"]
        assert type(answer) is int, f"{where}: answer {answer!r}"
        assert answer == value, f"{where}: answer {answer} but {row['solution']} = {value}"
    assert value >= 0, f"{where}: negative answer"
    return value


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@cache
def heldout() -> tuple[dict, ...]:
    return tuple(read_jsonl(HELDOUT))


def normalise(question: str) -> str:
    """Case, whitespace and every number folded, so that only the template's wording is left."""
    return re.sub(r"\s+", " ", re.sub(r"\d+", "#", question.lower())).strip()


def near(a: str, b: str) -> bool:
    """Two normalised questions share a template: equal, or most of their words in order."""
    if a == b:
        return True
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio() >= NEAR


@cache
def reference_templates() -> frozenset[str]:
    """The builtin pairs' problems and problems.jsonl's questions, normalised."""
    texts = [p.problem for p in builtin_pairs().pairs]
    texts += [row["question"] for row in read_jsonl(CALIBRATION)]
    return frozenset(normalise(t) for t in texts)


def test_every_heldout_row_fits_the_schema_and_its_answer_is_its_solution() -> None:
    for n, row in enumerate(heldout(), 1):
        value = check_row(row, f"heldout.jsonl line {n}")
        assert row.get("image") is None and row["kind"]
        numbers = [int(x) for x in re.findall(r"\d+", row["question"])]
        assert max(numbers) <= 1000 and value <= 2000, f"line {n}: numbers out of range"


def test_heldout_ids_and_questions_are_unique_and_the_set_is_large_and_varied() -> None:
    rows = heldout()
    assert [r["id"] for r in rows] == [f"heldout-{i:04d}" for i in range(1, len(rows) + 1)]
    assert len({r["question"] for r in rows}) == len(rows)
    kinds = Counter(r["kind"] for r in rows)
    choice = Counter(r["kind"] for r in rows if "choices" in r)
    assert len(rows) >= 500 and len(kinds) >= 8 and min(kinds.values()) >= 30, kinds
    assert sum(choice.values()) >= 80 and set(choice) == set(kinds), choice
    # Every kind in the first rows, so a --limit run still covers them all.
    assert {r["kind"] for r in rows[: len(kinds)]} == set(kinds)


def test_heldout_shares_no_template_with_the_builtin_pairs_or_problems_jsonl() -> None:
    reference = reference_templates()
    assert len(reference) > 50
    for question in {normalise(r["question"]) for r in heldout()}:
        match = next((q for q in reference if near(question, q)), None)
        assert match is None, f"{question!r} is a near copy of {match!r}"


def test_the_template_check_catches_a_builtin_problem_with_new_numbers_and_name() -> None:
    """The disjointness check would fail on a copied template, not only on a copied text."""
    original = builtin_pairs().pairs[0].problem
    name = original.split()[0]
    copied = re.sub(r"\d+", lambda m: str(int(m.group()) + 7), original).replace(name, "Zephyr")
    assert copied != original
    assert any(near(normalise(copied), q) for q in reference_templates())


def test_heldout_jsonl_is_what_the_generator_writes(tmp_path: Path) -> None:
    make_heldout = load_script("make_heldout")
    written = make_heldout.write_heldout(tmp_path / "heldout.jsonl")
    assert written.read_bytes() == HELDOUT.read_bytes()


@pytest.fixture(scope="module")
def images() -> ModuleType:
    from l2v_hub.demo import image_problems

    return image_problems


def test_image_problems_exist_at_the_size_asked_and_answer_their_solutions(
    images: ModuleType, tmp_path: Path
) -> None:
    path = images.make_image_problems(tmp_path / "set", count=12, seed=3, size=200)
    rows = read_jsonl(path)
    assert [r["id"] for r in rows] == [f"image-{i:04d}" for i in range(1, 13)]
    assert {r["kind"] for r in rows} == set(images.KINDS)
    assert any("choices" in r for r in rows[:5]) and any("choices" not in r for r in rows)
    for n, row in enumerate(rows, 1):
        check_row(row, f"image problems line {n}")
        picture = path.parent / row["image"]
        assert picture.is_file() and not Path(row["image"]).is_absolute()
        with Image.open(picture) as im:
            assert im.format == "PNG" and im.size == (200, 200)


def test_image_problems_are_deterministic_for_a_seed(images: ModuleType, tmp_path: Path) -> None:
    def files(folder: Path) -> dict[str, bytes]:
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                if p.is_file()}

    first = files(images.make_image_problems(tmp_path / "a", count=5, seed=7).parent)
    again = files(images.make_image_problems(tmp_path / "b", count=5, seed=7).parent)
    other = files(images.make_image_problems(tmp_path / "c", count=5, seed=8).parent)
    assert len(first) == 6 and first == again
    assert other.keys() == first.keys() and other != first
    with Image.open(tmp_path / "a" / "images" / "image-0001.png") as im:
        assert im.size == (384, 384)  # the default


def test_image_script_command_line(tmp_path: Path) -> None:
    script = [sys.executable, "-m", "l2v_hub.demo.image_problems"]
    done = subprocess.run([*script, str(tmp_path), "--count", "2",
                           "--seed", "1", "--size", "128"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(tmp_path / "problems.jsonl")) == 2
    bad = subprocess.run([*script, str(tmp_path), "--size", "64"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "size" in bad.stderr
