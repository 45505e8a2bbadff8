"""How a problem is asked and scored, and how a problems file is read (l2v_hub.measure.prompts,
answers, problems): the regimes' instructions, choices as ``A. ...`` lines, the chat template or
the plain ``Question: ...\\nAnswer:`` frame, left padding, the final answer read from an answer,
and problems files whose errors name the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_llm import byte_tokenizer

from l2v_hub.errors import ArgumentError
from l2v_hub.measure import Problem, ProblemsError, builtin_problems, load_problems, score
from l2v_hub.measure.answers import final_letter
from l2v_hub.measure.prompts import (
    encode,
    is_chat,
    is_completion,
    pad_id,
    prompt_ids,
    question_text,
    render,
)

Q = "Tom has 12 apples and buys 30 more. How many apples does he have?"
NUMBER = Problem("p1", "add", Q, 42)
CHOICE = Problem("p2", "add", Q, "B", ("40", "42", "44", "1,200"))


def test_plain_asks_the_question_as_is() -> None:
    assert question_text(NUMBER, "plain") == Q
    assert question_text(Problem("x", "", "  padded question?  ", 1), "plain") == "padded question?"


def test_direct_asks_for_the_final_answer_only() -> None:
    assert question_text(NUMBER, "direct") == f"{Q}\nAnswer with only the final number."
    assert question_text(CHOICE, "direct").endswith(
        "\nAnswer with only the letter of the correct choice.")


def test_cot_asks_to_think_step_by_step() -> None:
    assert question_text(NUMBER, "cot") == f"{Q}\nLet's think step by step."
    assert question_text(CHOICE, "cot").endswith("D. 1,200\nLet's think step by step.")


def test_choices_are_lettered_lines_after_the_question() -> None:
    lines = question_text(CHOICE, "plain").split("\n")
    assert lines == [Q, "A. 40", "B. 42", "C. 44", "D. 1,200"]


def test_an_unknown_regime_is_refused() -> None:
    with pytest.raises(ArgumentError, match="prompt must be one of plain, direct, cot"):
        question_text(NUMBER, "socratic")


def decoded(tok, batch: dict, row: int = 0) -> str:
    ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
    return tok.decode(ids)


def test_a_base_model_is_asked_in_the_question_answer_frame() -> None:
    tok = byte_tokenizer()
    assert not is_chat(tok)
    batch = encode(tok, [NUMBER], "direct")
    assert decoded(tok, batch) == f"Question: {Q}\nAnswer with only the final number.\nAnswer:"
    assert tok.decode(prompt_ids(tok, Q)) == f"Question: {Q}\nAnswer:"


def test_a_chat_model_is_asked_through_its_chat_template() -> None:
    tok = byte_tokenizer(chat_template=True)
    assert is_chat(tok)
    batch = encode(tok, [CHOICE], "cot")
    text = decoded(tok, batch)
    assert text == (f"<|user|>{question_text(CHOICE, 'cot')}</s><|assistant|>")
    assert "Question:" not in text and "Answer:" not in text
    assert tok.decode(prompt_ids(tok, Q)) == f"<|user|>{Q}</s><|assistant|>"


@pytest.mark.parametrize("chat", [False, True])
def test_a_batch_is_left_padded(chat: bool) -> None:
    tok = byte_tokenizer(chat_template=chat, padding_side="right")
    short = Problem("s", "", "1 + 1?", 2)
    batch = encode(tok, [NUMBER, short, CHOICE], "plain")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 3
    # The answer starts at the same column for every row: the last column is a real token.
    assert bool(mask[:, -1].all()) and bool((ids[:, -1] != pad_id(tok)).all())
    # The short row is padded on the left, with the pad token.
    pads = int((mask[1] == 0).sum())
    assert pads > 0 and bool((mask[1, :pads] == 0).all()) and bool((mask[1, pads:] == 1).all())
    assert bool((ids[1, :pads] == pad_id(tok)).all())
    assert tok.padding_side == "right"  # left padding only while encoding
    # Each row, unpadded, is exactly its prompt encoded alone.
    for row, p in enumerate([NUMBER, short, CHOICE]):
        alone = encode(tok, [p], "plain")["input_ids"][0]
        assert torch.equal(batch["input_ids"][row][mask[row].bool()], alone)


def test_an_image_problem_asked_with_a_tokenizer_only_names_the_problem(tmp_path: Path) -> None:
    image = tmp_path / "seven.png"
    Image.new("RGB", (16, 16), "white").save(image)
    problem = Problem("img-7", "read_number", "What number is shown?", 7, (), (image,))
    for tok in (byte_tokenizer(), byte_tokenizer(chat_template=True)):
        with pytest.raises(ArgumentError, match=r"problem 'img-7' has an image.*AutoProcessor"):
            encode(tok, [problem], "plain")


@pytest.mark.parametrize(("text", "final", "correct"), [
    ("42", 42.0, True),
    ("12 + 30 = 42 apples.", 42.0, True),
    ("He has 42. Then he eats 2.", 2.0, False),  # the last number counts
    ("no number", None, False),
    ("42.0", 42.0, True),
    ("-42", -42.0, False),
])
def test_a_number_answer_is_the_last_number_written(text: str, final: float | None,
                                                    correct: bool) -> None:
    assert score(text, NUMBER) == (final, correct)


@pytest.mark.parametrize(("text", "answer", "correct"), [
    ("It comes to 1,250 dollars.", 1250, True),
    ("1,250", 1250, True),
    ("12,000,000 grains", 12_000_000, True),
    ("3.5 hours", 3.5, True),
    ("1,250", 125, False),
])
def test_numbers_with_thousands_separators(text: str, answer: float, correct: bool) -> None:
    assert score(text, Problem("n", "", "q", answer))[1] is correct


@pytest.mark.parametrize(("text", "letter"), [
    ("B", "B"),
    ("The answer is B.", "B"),
    ("(C)", "C"),
    ("I first thought C, but it is B", "B"),  # the last letter counts
    ("B. 42", "B"),
    ("42", "B"),  # no letter: the choice whose number it ends on
    ("It is 1,200 apples", "D"),  # the number with its thousands separator
    ("It is 1200", "D"),
    ("The result is 43", None),  # no choice has that number
    ("E", None),  # not a letter of these four choices
    ("Because", None),  # letters inside words do not count
    ("A total of 42", "B"),  # the article is not a letter: the choice whose number it ends on
    ("B. A total of 42", "B"),
])
def test_a_choice_answer_is_the_last_choice_letter(text: str, letter: str | None) -> None:
    assert final_letter(text, CHOICE) == letter
    assert score(text, CHOICE) == (letter, letter == "B")


def test_a_number_shared_by_two_choices_gives_no_letter() -> None:
    twice = Problem("t", "", "q", "A", ("7", "7.0", "9"))
    assert final_letter("7", twice) is None
    assert final_letter("9", twice) == "C"


# --- problems files -------------------------------------------------------------------------

def write(tmp_path: Path, *rows: object) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


GOOD = {"id": "ok", "question": "What is 2 plus 2?", "answer": 4}


@pytest.mark.parametrize(("bad", "field"), [
    ({"id": "b", "answer": 3}, "question"),
    ({"id": "b", "question": "   ", "answer": 3}, "question"),
    ({"id": "b", "question": "q"}, "answer"),
    ({"id": "b", "question": "q", "answer": "many"}, "answer"),
    ({"id": "b", "question": "q", "answer": True}, "answer"),
    ({"id": "b", "question": "q", "answer": float("nan")}, "answer"),
    ({"id": "b", "question": "q", "answer": "B"}, "answer"),  # a letter without choices
    ({"id": "b", "question": "q", "answer": "E", "choices": ["1", "2", "3", "4"]}, "answer"),
    ({"id": "b", "question": "q", "answer": "A", "choices": ["1"]}, "choices"),
    ({"id": "b", "question": "q", "answer": "A", "choices": "1,2"}, "choices"),
    ({"id": "b", "question": "q", "answer": 1, "image": "missing.png"}, "image"),
    ({"id": "b", "question": "q", "answer": 1, "image": 5}, "image"),
])
def test_a_malformed_row_names_its_line_and_field(tmp_path: Path, bad: dict, field: str) -> None:
    path = write(tmp_path, GOOD, "", bad)  # line 2 is blank: line 3 is the bad row
    with pytest.raises(ProblemsError, match=rf"problems\.jsonl, line 3, field {field}\b"):
        load_problems(path)


def test_a_letter_without_choices_says_choices_are_needed(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match=r"line 1, field answer.*needs 'choices'"):
        load_problems(write(tmp_path, {"question": "q", "answer": "B"}))


def test_a_letter_outside_the_choices_lists_the_letters(tmp_path: Path) -> None:
    row = {"question": "q", "answer": "D", "choices": ["1", "2", "3"]}
    with pytest.raises(ProblemsError, match="line 1, field answer: expected one of the choice "
                                            "letters A, B, C"):
        load_problems(write(tmp_path, row))


def test_a_missing_image_names_the_file(tmp_path: Path) -> None:
    row = {**GOOD, "image": "images/none.png"}
    with pytest.raises(ProblemsError, match=r"line 1, field image: no such file .*none\.png"):
        load_problems(write(tmp_path, row))


def test_a_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match=r"line 3, field id: 'ok' is already on line 1"):
        load_problems(write(tmp_path, GOOD, {**GOOD, "id": "other"}, GOOD))


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match=r"line 2: not JSON"):
        load_problems(write(tmp_path, GOOD, "{'question': 'single quotes'}"))
    with pytest.raises(ProblemsError, match=r"line 1, field row: expected a JSON object"):
        load_problems(write(tmp_path, "[1, 2]"))


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match="no problems"):
        load_problems(write(tmp_path, ""))
    with pytest.raises(ProblemsError, match="cannot read"):
        load_problems(tmp_path / "absent.jsonl")


def test_images_resolve_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data" / "img").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / "img" / name)
    path = tmp_path / "data" / "p.jsonl"
    path.write_text(json.dumps({**GOOD, "image": "img/a.png"}) + "\n"
                    + json.dumps({**GOOD, "id": "two", "image": ["img/a.png", "img/b.png"]}) + "\n",
                    encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # not the file's folder: paths must not resolve against the cwd
    one, two = load_problems(Path("data/p.jsonl"))
    assert one.images == ((tmp_path / "data" / "img" / "a.png").resolve(),)
    assert [p.name for p in two.images] == ["a.png", "b.png"]
    assert all(p.is_absolute() and p.is_file() for p in two.images)


def test_rows_are_read_with_their_fields(tmp_path: Path) -> None:
    rows = [
        {"id": "n", "kind": "k", "question": "q1", "answer": "1,250", "solution": "1250"},
        {"question": "q2", "answer": 2.5},
        {"id": "c", "question": "q3", "answer": "b", "choices": ["x", "y"]},
    ]
    n, plain, choice = load_problems(write(tmp_path, *rows))
    assert (n.id, n.kind, n.answer, n.choices, n.images) == ("n", "k", 1250, (), ())
    assert isinstance(n.answer, int)
    assert (plain.id, plain.answer) == ("line-2", 2.5)
    assert (choice.answer, choice.choices) == ("B", ("x", "y"))


def test_null_or_empty_optional_fields_mean_none(tmp_path: Path) -> None:
    # What a table exported to JSONL writes for a row without choices or image.
    rows = [{"question": "q1", "answer": 3, "choices": None, "image": None},
            {"question": "q2", "answer": 4, "choices": [], "image": []},
            {"question": "q3", "answer": 5, "image": ""}]
    problems = load_problems(write(tmp_path, *rows))
    assert [(p.answer, p.choices, p.images) for p in problems] == [(3, (), ()), (4, (), ()), (5, (), ())]


def test_a_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n")
    (problem,) = load_problems(path)
    assert (problem.id, problem.answer) == ("ok", 4)


def test_the_builtin_heldout_set_has_600_problems() -> None:
    problems = builtin_problems("heldout", None)
    assert len(problems) == 600 and len({p.id for p in problems}) == 600
    assert sum(bool(p.choices) for p in problems) == 100
    assert not any(p.images for p in problems)
    assert builtin_problems("heldout", 12) == problems[:12]


def test_an_image_problem_needs_a_template_that_places_the_image(tmp_path: Path) -> None:
    image = tmp_path / "seven.png"
    Image.new("RGB", (16, 16), "white").save(image)
    problem = Problem("img-8", "read_number", "What number is shown?", 8, (), (image,))
    with pytest.raises(ArgumentError, match=r"problem 'img-8' has an image.*no chat template"):
        render(byte_tokenizer(), problem, "plain")


def test_the_question_answer_frame_is_a_completion_also_when_a_template_renders_it() -> None:
    # A base model wrapped as a VLM (l2v_hub.demo.vlm) has a template that renders the plain
    # frame: its answers end at the next Question:/Answer: line as a base model's do.
    tok = byte_tokenizer()
    tok.chat_template = "<s>Question: {{ messages[0]['content'] }}\nAnswer:"
    assert is_chat(tok) and is_completion(render(tok, NUMBER, "direct"))
    assert is_completion(render(byte_tokenizer(), NUMBER, "plain"))
    assert not is_completion(render(byte_tokenizer(chat_template=True), NUMBER, "plain"))
