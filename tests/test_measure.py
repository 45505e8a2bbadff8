"""l2v_hub.measure: the problem sets stay apart from the builtin pairs and from each other, and the
measures mean what docs/calibration.md says (final number, step-by-step, non-ASCII share,
perplexity, the seeded random control)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import random_pack
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.builder import builtin_pairs
from l2v_hub.loader.steer import norm_preserving_add
from l2v_hub.measure import (
    builtin_problems,
    final_number,
    is_step_by_step,
    load_problems,
    non_ascii_share,
    perplexity,
    random_directions,
)
from l2v_hub.measure.problems import MAX_CHOICES, _parse


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def every_problem() -> list:
    from importlib import resources

    text = resources.files("l2v_hub.data").joinpath("problems.jsonl").read_text(encoding="utf-8")
    return _parse(text.splitlines(), "problems.jsonl", None)


def test_no_problem_appears_in_any_builtin_pair() -> None:
    # The calibration measures accuracy on these: a question the pairs already answer would leak.
    problems = every_problem()
    assert len(problems) >= 100 and len({p.id for p in problems}) == len(problems)
    # A question twice would land in both splits (they take neighbouring lines).
    assert len({_norm(p.question) for p in problems}) == len(problems)
    pair_texts = [_norm(t) for pair in builtin_pairs().pairs for t in (pair.problem, pair.cot, pair.direct)]
    for p in problems:
        q = _norm(p.question)
        leaked = [t for t in pair_texts if q in t]
        assert not leaked, f"question {p.id} appears in the builtin pairs: {leaked[0][:80]!r}"


@pytest.mark.parametrize("limit", [1, 7, 20, 50])
def test_the_calibration_and_readability_splits_are_disjoint(limit: int) -> None:
    calibration = builtin_problems("calibration", limit)
    readability = builtin_problems("readability", limit)
    assert len(calibration) == len(readability) == limit
    assert len({p.id for p in calibration}) == limit and len({p.id for p in readability}) == limit
    assert not {p.id for p in calibration} & {p.id for p in readability}
    assert not {p.question for p in calibration} & {p.question for p in readability}


def test_twenty_calibration_problems_cover_every_kind() -> None:
    kinds = {p.kind for p in every_problem()}
    assert {p.kind for p in builtin_problems("calibration", 20)} == kinds


@pytest.mark.parametrize(("split", "limit"), [("train", 5), ("calibration", 0), ("calibration", 51)])
def test_a_bad_split_or_limit_is_refused(split: str, limit: int) -> None:
    with pytest.raises(ValueError, match="split must be"):
        builtin_problems(split, limit)


def test_load_problems_reads_jsonl_and_names_a_bad_line(tmp_path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "question": "What is 1 plus 1?", "answer": 2}\n\n'
                    '{"id": "b", "question": "q"}\n', encoding="utf-8")
    with pytest.raises(l2v_hub.PackError, match=r"p\.jsonl, line 3"):
        load_problems(path)
    path.write_text('{"id": "a", "question": "What is 1 plus 1?", "answer": 2}\n', encoding="utf-8")
    (problem,) = load_problems(path)
    assert (problem.id, problem.answer, problem.kind) == ("a", 2, "")


@pytest.mark.parametrize(("count", "accepted"), [(1, False), (2, True), (26, True), (27, False)])
def test_the_choice_count_range_is_the_one_docs_problems_md_states(tmp_path, count: int,
                                                                   accepted: bool) -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "problems.md").read_text()
    assert f"| `choices` | optional, 2 to {MAX_CHOICES} strings" in docs
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"question": "Which?", "answer": "B",
                                "choices": [f"c{i}" for i in range(count)]}) + "\n")
    if accepted:
        assert len(load_problems(path)[0].choices) == count
    else:
        with pytest.raises(l2v_hub.PackError, match=f"2 to {MAX_CHOICES} non-empty strings"):
            load_problems(path)


@pytest.mark.parametrize(("text", "number"), [
    ("16 + 28 = 44.", 44.0),
    ("It costs 1,250 dollars", 1250.0),
    ("The temperature drops to -3 degrees.", -3.0),
    ("Half of 7 is 3.5.", 3.5),
    ("no digits here", None),
])
def test_final_number_is_the_last_number_written(text: str, number: float | None) -> None:
    assert final_number(text) == number


Q = "A farm has 6 cows and 7 chickens. How many legs do the animals have in total?"


@pytest.mark.parametrize(("text", "truncated", "structured"), [
    ("38", False, False),
    ("6 cows and 7 chickens have 38 legs.", False, False),  # one sentence, no step word
    ("6 * 4 = 24.\nSo the total is 38.", False, True),  # two different segments with numbers
    ("First 6 cows have 6 * 4 = 24 legs", False, True),  # step word, 4 numbers, 24 is new
    ("First, 6 cows and 7 chickens", False, False),  # step word, but only the question's numbers
    ("38. 38. 38.", False, False),  # one distinct number
    ("6 + 7 = 13\n6 + 7 = 13\n6 + 7 = 1", True, False),  # a loop cut mid-line is not a step
    ("6 + 7 = 13\n6 + 7 = 13\n6 + 7 = 1", False, True),  # finished: two different lines
    ("Step 1: 6 cows have 24 legs. Step 2: 7 chickens have 14 legs. Total 38.", False, True),
])
def test_step_by_step_definition(text: str, truncated: bool, structured: bool) -> None:
    assert is_step_by_step(text, Q, truncated) is structured


@pytest.mark.parametrize(("text", "share"), [
    ("", 0.0),
    ("plain English, 42.", 0.0),
    ("ab\u200dcd", 0.2),  # the zero-width joiner of token soup
    ("\u00e9\u00e9", 1.0),
])
def test_non_ascii_share_counts_characters_outside_ascii(text: str, share: float) -> None:
    assert non_ascii_share(text) == pytest.approx(share)


TEXT = "The old market hall stands at the corner of the square."


def one_forward_perplexity(model: torch.nn.Module, ids: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1]
    return math.exp(float(torch.nn.functional.cross_entropy(logits, ids[0, 1:])))


def test_perplexity_unpatched_equals_the_one_forward_perplexity() -> None:
    # The prompt/continuation split only changes which tokens a patch steers, not the score.
    model, tok = tiny_llama(hidden=32, layers=4), byte_tokenizer()
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    assert perplexity(model, tok, TEXT) == pytest.approx(one_forward_perplexity(model, ids), rel=1e-4)


def test_patched_perplexity_steers_every_token_of_the_text_but_the_first() -> None:
    # Scored as text the model writes: under positions="generated" the first token is the prompt
    # and every later one is steered, as one forward steering columns 1.. by hand gives.
    model, tok = tiny_llama(hidden=32, layers=4), byte_tokenizer()
    ids = torch.tensor([tok(TEXT)["input_ids"]])
    pack, block, strength = random_pack(32, 4, scale=0.2), 2, 1.0
    with l2v_hub.patch(model, pack, layers=[block], positions="generated", strength=strength):
        patched = perplexity(model, tok, TEXT)
    push = strength * 0.2 * pack.directions[block]

    def by_hand(module: torch.nn.Module, args: object, output: object) -> object:
        hidden = output[0] if isinstance(output, tuple) else output
        steered = torch.cat([hidden[:, :1], norm_preserving_add(hidden[:, 1:], push)], dim=1)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    handle = model.model.layers[block].register_forward_hook(by_hand)
    expected = one_forward_perplexity(model, ids)
    handle.remove()
    assert patched == pytest.approx(expected, rel=1e-4)
    assert patched != pytest.approx(perplexity(model, tok, TEXT), rel=1e-3)  # the patch acted


def test_random_directions_are_seeded_unit_and_independent() -> None:
    a, b, c = random_directions(48, 6, 0), random_directions(48, 6, 0), random_directions(48, 6, 1)
    assert a.shape == (6, 48) and a.dtype == torch.float32 and a.is_contiguous()
    assert torch.equal(a, b) and not torch.allclose(a, c)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(6), rtol=0, atol=1e-6)
    # Independent per block: no two blocks share a direction.
    cos = a @ a.T - torch.eye(6)
    assert float(cos.abs().max()) < 0.9
