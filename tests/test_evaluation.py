"""l2v_hub.evaluate on a tiny random Llama: the rows (unpatched, pack, random control, explicit-CoT
prompt), the control built exactly like the pack, the paired comparisons, resuming after an
interruption, the model left as it was, bad arguments refused before any answer, and the report
files.

The tiny model's head is cut down to digits, space and EOS (each digit paired with its negation,
so some digit always scores above zero): every answer is a number, so that problems can be given
answers that some rows get right and others wrong.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import random_pack
from PIL import Image
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.errors import ArgumentError, IncompatiblePackError
from l2v_hub.evaluation import EvalReport, evaluate
from l2v_hub.measure import Problem, answer_problems, random_directions
from l2v_hub.measure.stats import mcnemar_exact, paired_bootstrap

HIDDEN, LAYERS, TOKENS = 32, 4, 6
pytestmark = pytest.mark.filterwarnings("ignore:cannot tell which model this is")


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny matrices: a second intra-op thread only adds contention (100x slower on a busy 2-core box).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def digit_llama() -> tuple[torch.nn.Module, object]:
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS, seed=3), byte_tokenizer()
    digits = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
    space, eos = tok.convert_tokens_to_ids("Ġ"), tok.eos_token_id
    head = model.lm_head.weight.data
    assert head.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    kept = head[[*digits, space, eos]].clone()
    head.zero_()
    for i in range(0, 10, 2):
        head[digits[i]], head[digits[i + 1]] = kept[i], -kept[i]
    head[space], head[eos] = kept[10], 0.5 * kept[11]
    return model, tok


@pytest.fixture(scope="module")
def tiny() -> tuple[torch.nn.Module, object]:
    return digit_llama()


PACK = random_pack(HIDDEN, LAYERS, scale=6.0)
QUESTIONS = ["What is 2 plus 3?", "How many legs do 4 cats have?", "Add 17 and 25.",
             "A box holds 12 eggs. How many eggs are in 5 boxes?", "What is 9 times 8?",
             "Tom had 40 marbles and lost 13. How many are left?", "Half of 64?",
             "Anna reads 15 pages a day for 6 days. How many pages does she read?"]


def problems(answers: list[float] | None = None) -> list[Problem]:
    answers = answers or [0] * len(QUESTIONS)
    return [Problem(f"q{i}", "", q, a) for i, (q, a) in enumerate(zip(QUESTIONS, answers, strict=True))]


def run(tiny, given=None, **kw) -> EvalReport:
    model, tok = tiny
    kw = {"strengths": (1.0,), "max_new_tokens": TOKENS, "batch_size": 3, "progress": False, **kw}
    return evaluate(model, tok, kw.pop("pack", PACK), given or problems(), **kw)


@pytest.fixture(scope="module")
def base(tiny) -> EvalReport:
    return run(tiny)


MEASURES = ("accuracy", "step_by_step", "answer_tokens", "truncated", "non_ascii")


def test_the_rows_and_their_measures(base: EvalReport) -> None:
    assert [(r.name, r.kind, r.regime) for r in base.rows] == [
        ("unpatched", "unpatched", "plain"), ("pack 1", "pack", "plain"),
        ("random 1", "control", "plain"), ("cot prompt", "reference", "cot")]
    for r in base.rows:
        assert r.n == len(QUESTIONS) == len(r.answers)
        assert [a["id"] for a in r.answers] == [f"q{i}" for i in range(len(QUESTIONS))]
        for m in MEASURES:
            value = getattr(r, m)
            assert 0 <= value <= (TOKENS * 4 if m == "answer_tokens" else 1), (r.name, m)
        assert r.answer_tokens > 0
        assert (r.perplexity is None) == (r.kind == "reference")
    # Every answer is a number (the digit head), so each row's final answers are readable.
    assert all(isinstance(a["final"], float) for r in base.rows for a in r.answers if a["text"])
    # The steering acted: the pack's answers are not the unpatched ones, nor the control's.
    texts = {r.name: [a["text"] for a in r.answers] for r in base.rows}
    assert texts["pack 1"] != texts["unpatched"] and texts["pack 1"] != texts["random 1"]
    assert base.row("unpatched").perplexity != base.row("pack 1").perplexity
    assert base.config["problems"]["count"] == len(QUESTIONS)
    assert base.config["control"] == "random" and base.config["prompt"] == "plain"


def test_the_cot_row_is_asked_with_the_step_by_step_prompt(tiny, base: EvalReport) -> None:
    model, tok = tiny
    cot = answer_problems(model, tok, problems(), TOKENS, 3, "cot")
    assert [a.text for a in cot] == [a["text"] for a in base.row("cot prompt").answers]
    assert [a.text for a in cot] != [a["text"] for a in base.row("unpatched").answers]


def test_the_control_is_the_pack_with_random_directions(tiny, base: EvalReport) -> None:
    pack, control = base.row("pack 1"), base.row("random 1")
    for field in ("pack", "strength", "positions", "layers", "op"):
        assert getattr(control, field) == getattr(pack, field), field
    assert (pack.strength, pack.positions, pack.layers, pack.op) == (
        1.0, PACK.hook.positions, list(PACK.defaults.layers), PACK.hook.op)
    # The same answers as an explicit patch with the seeded random directions.
    model, tok = tiny
    twin = replace(PACK, directions=random_directions(HIDDEN, LAYERS, 0))
    with l2v_hub.patch(model, twin, strength=1.0):
        expected = answer_problems(model, tok, problems(), TOKENS, 3)
    assert [a.text for a in expected] == [a["text"] for a in control.answers]
    with l2v_hub.patch(model, PACK, strength=1.0):
        expected = answer_problems(model, tok, problems(), TOKENS, 3)
    assert [a.text for a in expected] == [a["text"] for a in pack.answers]


def test_the_control_follows_seed_positions_and_layers(tiny) -> None:
    pack = replace(PACK, defaults=replace(PACK.defaults, layers=(1, 3)))
    report = run(tiny, pack=pack, seed=5, positions="all", strengths=(0.7,), reference=False)
    assert [r.name for r in report.rows] == ["unpatched", "pack 0.7", "random 0.7"]
    control = report.row("random 0.7")
    assert (control.strength, control.positions, control.layers) == (0.7, "all", [1, 3])
    model, tok = tiny
    twin = replace(pack, directions=random_directions(HIDDEN, LAYERS, 5))
    with l2v_hub.patch(model, twin, strength=0.7, positions="all"):
        expected = answer_problems(model, tok, problems(), TOKENS, 3)
    assert [a.text for a in expected] == [a["text"] for a in control.answers]
    assert report.config["seed"] == 5


def test_two_packs_get_a_row_and_a_control_each(tiny) -> None:
    other = random_pack(HIDDEN, LAYERS, scale=6.0, seed=1, version="2.0.0")
    report = run(tiny, pack=[PACK, other], reference=False)
    names = [r.name for r in report.rows]
    source = PACK.source.model_id.rsplit("/", 1)[-1]  # both packs come from the same source LLM
    assert names == ["unpatched", f"pack from {source} #1 1", f"random (pack from {source} #1) 1",
                     f"pack from {source} #2 1", f"random (pack from {source} #2) 1"]
    for pack_row, control in [(names[1], names[2]), (names[3], names[4])]:
        assert [c.against for c in report.row(pack_row).comparisons] == ["unpatched", control]
        assert report.row(pack_row).pack == report.row(control).pack
    assert report.config["packs"] == ["tiny-pack@1.0.0", "tiny-pack@2.0.0"]


def test_two_packs_of_the_same_name_and_version_get_rows_of_their_own(tiny) -> None:
    # e.g. a transferred pack and the target's own direction, both built as "cot" 1.0.0
    other = random_pack(HIDDEN, LAYERS, scale=6.0, seed=1)
    report = run(tiny, pack=[PACK, other], reference=False)
    names = [r.name for r in report.rows]
    assert len(set(names)) == len(names) == 5, names
    first, second = (r for r in report.rows if r.kind == "pack")
    assert [a["text"] for a in first.answers] != [a["text"] for a in second.answers]
    for r in (first, second):
        control = r.comparisons[1].against
        assert report.row(control).kind == "control"


def test_a_row_per_strength(tiny) -> None:
    report = run(tiny, strengths=(0.5, 2.0), reference=False)
    assert [(r.name, r.strength) for r in report.rows] == [
        ("unpatched", None), ("pack 0.5", 0.5), ("random 0.5", 0.5), ("pack 2", 2.0),
        ("random 2", 2.0)]
    assert report.row("pack 2").against("random 2") is not None
    assert report.row("pack 2").against("random 0.5") is None


def test_control_none_drops_the_controls(tiny) -> None:
    report = run(tiny, control="none", strengths=(0.5, 2.0))
    assert [r.kind for r in report.rows] == ["unpatched", "pack", "pack", "reference"]
    for r in report.rows[1:]:
        assert [c.against for c in r.comparisons] == ["unpatched"]
    assert report.row("pack 2").power is not None


def test_the_cot_regime_needs_no_reference_row(tiny) -> None:
    report = run(tiny, prompt="cot", control="none")
    assert [(r.name, r.regime) for r in report.rows] == [("unpatched", "cot"), ("pack 1", "cot")]


def test_comparisons_and_accuracy_follow_the_answers(tiny, base: EvalReport) -> None:
    # Answers chosen from the first run: the unpatched final on even problems, on odd ones the
    # pack's (else the control's, else a number no row wrote). Asked again, every row is right
    # exactly where its final equals that answer.
    finals = {r.name: [a["final"] for a in r.answers] for r in base.rows}
    order = [["unpatched"], ["pack 1", "random 1"]]
    answers = [next((finals[n][i] for n in order[i % 2] if finals[n][i] is not None), 123456)
               for i in range(len(QUESTIONS))]
    report = run(tiny, problems(answers))
    right = {name: [f == a for f, a in zip(got, answers, strict=True)] for name, got in finals.items()}
    assert sum(right["unpatched"]) >= len(QUESTIONS) // 2 and any(right["pack 1"])
    for r in report.rows:
        assert [a["correct"] for a in r.answers] == right[r.name]
        assert r.correct == sum(right[r.name])
        assert r.accuracy == pytest.approx(sum(right[r.name]) / len(QUESTIONS))
    for name, other in [("pack 1", "unpatched"), ("pack 1", "random 1"), ("random 1", "unpatched"),
                        ("cot prompt", "unpatched")]:
        c = report.row(name).against(other)
        won = sum(a and not b for a, b in zip(right[name], right[other], strict=True))
        lost = sum(b and not a for a, b in zip(right[name], right[other], strict=True))
        assert (c.won, c.lost) == (won, lost)
        assert c.difference == pytest.approx((won - lost) / len(QUESTIONS))
        assert 0 <= c.p_value <= 1 and c.p_value == pytest.approx(mcnemar_exact(won, lost))
        assert (c.ci_low, c.ci_high) == paired_bootstrap(right[name], right[other], seed=0)
        assert c.ci_low <= c.difference <= c.ci_high
    c = report.row("pack 1").against("unpatched")
    assert c.won > 0 and c.lost > 0  # the test would not see a swapped won/lost otherwise
    assert 0 < report.row("pack 1").power <= 1


class Interrupt:
    """Ctrl-C in the middle of a row: a forward pre-hook on the embeddings raises
    KeyboardInterrupt the ``nth`` time a prompt holding ``marker`` is read."""

    def __init__(self, model: torch.nn.Module, tok: object, marker: str, nth: int) -> None:
        self.tok, self.marker, self.left = tok, marker, nth
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self)

    def __call__(self, _module: torch.nn.Module, args: tuple) -> None:
        ids = args[0]
        if ids.shape[1] > 1 and any(self.marker in t for t in self.tok.batch_decode(ids)):
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt


def kept(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "answers.jsonl").read_text().splitlines()]


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([[1, 40, 50, 60, 70]])).logits


def hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_an_interrupted_run_resumes_with_the_answers_it_kept(tiny, tmp_path: Path) -> None:
    model, tok = tiny
    before, out = logits(model), tmp_path / "eval"
    # The longest question is in the last batch of each row: Ctrl-C as the pack row reaches it.
    stop = Interrupt(model, tok, QUESTIONS[-1], nth=2)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, out=out)
    stop.handle.remove()
    # The model is as it was: no steering left, same logits.
    assert hooks(model) == 0 and "generate" not in vars(model)
    assert l2v_hub.unpatch(model) == 0
    assert torch.equal(logits(model), before)
    lines = kept(out)
    answers = [x for x in lines if "answer" in x]
    rows = Counter(x["row"] for x in answers)
    assert sorted(rows.values()) == [6, 8]  # unpatched complete; the pack row's first 2 batches
    assert not (out / "report.json").exists()

    report = run(tiny, out=out)
    assert report.config["resumed"] == len(answers) == 14
    again = kept(out)
    assert again[:len(lines)] == lines  # kept lines stay; new ones are appended
    ids = Counter((x["row"], x["answer"]["id"]) for x in again if "answer" in x)
    assert len(ids) == 4 * len(QUESTIONS) and set(ids.values()) == {1}  # no answer asked twice
    ppl = Counter(x["row"] for x in again if "perplexity" in x)
    assert len(ppl) == 3 and set(ppl.values()) == {1}
    # The kept answers are the ones reported (the first ones kept are the unpatched row's).
    by_key = {(x["row"], x["answer"]["id"]): x["answer"]["text"] for x in again if "answer" in x}
    assert [a["text"] for a in report.row("unpatched").answers] == [
        by_key[(answers[0]["row"], f"q{i}")] for i in range(len(QUESTIONS))]
    assert json.loads((out / "report.json").read_text())["config"]["resumed"] == 14

    # Everything kept: nothing is asked again, and the report is the same.
    third = run(tiny, out=out)
    assert third.config["resumed"] == 4 * len(QUESTIONS) and len(kept(out)) == len(again)
    assert [r.answers for r in third.rows] == [r.answers for r in report.rows]
    assert [r.perplexity for r in third.rows] == [r.perplexity for r in report.rows]
    # The answering time of the kept answers counts, though this run answered nothing.
    spent = sum(x["seconds"] for x in again if "answer" in x)
    assert third.config["answer_seconds"] == report.config["answer_seconds"] == round(spent, 1) > 0

    # A changed question is asked again, in every row; the others are kept.
    changed = problems()
    changed[2] = replace(changed[2], question="Add 17 and 26.")
    fourth = run(tiny, changed, out=out)
    assert fourth.config["resumed"] == 4 * (len(QUESTIONS) - 1)
    new = kept(out)[len(again):]
    assert sorted((x["row"], x["answer"]["id"]) for x in new) == sorted(
        (row, "q2") for row in {x["row"] for x in again if "answer" in x})
    # A new token budget is a different row: nothing is reused.
    assert run(tiny, out=out, max_new_tokens=TOKENS + 1).config["resumed"] == 0


def test_an_interrupted_patched_row_leaves_the_model_unpatched(tiny) -> None:
    model, tok = tiny
    before = logits(model)
    stop = Interrupt(model, tok, QUESTIONS[0], nth=3)  # inside the control row
    try:
        with pytest.raises(KeyboardInterrupt):
            run(tiny)
    finally:
        stop.handle.remove()
    assert hooks(model) == 0 and "generate" not in vars(model) and l2v_hub.unpatch(model) == 0
    assert torch.equal(logits(model), before)


@pytest.mark.parametrize(("kw", "match"), [
    ({"prompt": "bogus"}, "prompt must be one of"),
    ({"control": "shuffled"}, "control must be one of"),
    ({"limit": 0}, "limit must be >= 1"),
    ({"batch_size": 0}, "batch_size must be >= 1"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"strengths": (1.0, 50.0)}, "strength must be"),
    ({"strengths": (float("nan"),)}, "strength must be"),
    ({"positions": "middle"}, "positions must be one of"),
])
def test_bad_arguments_are_refused_before_any_answer(tiny, tmp_path: Path, kw: dict,
                                                     match: str) -> None:
    model, tok = tiny
    calls = Interrupt(model, tok, "", nth=10**9)  # counts nothing; any forward would be a call
    try:
        with pytest.raises(ArgumentError, match=match):
            run(tiny, out=tmp_path / "o", **kw)
        assert calls.left == 10**9
    finally:
        calls.handle.remove()
    assert not (tmp_path / "o" / "answers.jsonl").exists()


def test_a_pack_for_another_shape_is_refused_before_any_answer(tiny, tmp_path: Path) -> None:
    wide = random_pack(HIDDEN * 2, LAYERS)
    with pytest.raises(IncompatiblePackError, match="hidden_size=64"):
        run(tiny, pack=[PACK, wide], out=tmp_path / "o")
    assert not (tmp_path / "o" / "answers.jsonl").exists()


def test_image_problems_need_a_processor(tiny, tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    given = [*problems(), Problem("img", "", "What number?", 3, (), (tmp_path / "a.png",))]
    with pytest.raises(ArgumentError, match="AutoProcessor"):
        run(tiny, given, out=tmp_path / "o")
    assert not (tmp_path / "o" / "answers.jsonl").exists()


def test_problems_sharing_an_id_are_refused_before_any_answer(tiny) -> None:
    # Answers are kept by id: a second "q1" would take the first one's place.
    given = [*problems(), Problem("q1", "", "Another question?", 3)]
    with pytest.raises(ArgumentError, match="id 'q1' is given more than once"):
        run(tiny, given)


def test_one_problem_gives_a_report_that_is_valid_json(tiny, tmp_path: Path) -> None:
    report = run(tiny, problems()[:1], out=tmp_path / "one")
    c = report.row("pack 1").against("unpatched")
    assert (c.ci_low, c.ci_high) == (None, None)  # no interval from one problem
    text = (tmp_path / "one" / "report.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in report.json"))
    assert "nan" not in report.table().lower() and "nan" not in report.markdown().lower()


def test_limit_keeps_evenly_spaced_problems(tiny) -> None:
    report = run(tiny, limit=3, control="none", reference=False)
    assert [a["id"] for a in report.row("unpatched").answers] == ["q0", "q2", "q5"]
    assert report.config["problems"]["source"] == "given[3 evenly spaced]"


def test_the_report_files(base: EvalReport, tmp_path: Path) -> None:
    out = base.save(tmp_path / "report")
    data = json.loads((out / "report.json").read_text())
    assert data == json.loads(json.dumps(base.to_json()))
    assert [r["name"] for r in data["rows"]] == [r.name for r in base.rows]
    for row, r in zip(data["rows"], base.rows, strict=True):
        assert [a["text"] for a in row["answers"]] == [a["text"] for a in r.answers]
        assert len(row["answers"]) == len(QUESTIONS)
    md = (out / "report.md").read_text()
    assert md.startswith("# Evaluation of ")
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(base.rows)
    assert all(f"| {r.name} |" in md for r in base.rows)
    assert "Power to detect a 5-point accuracy difference" in md and "- pack 1: " in md
    with Image.open(out / "report.png") as png:
        assert png.format == "PNG" and png.size[0] >= 600
    text = base.table()
    assert all(r.name in text for r in base.rows) and "won/lost vs control" in text
    assert "answers" not in json.dumps(base.to_json(answers=False)["rows"])
