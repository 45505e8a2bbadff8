"""Pair sources, the canonical serialization and its hash, chat templating and tokenization."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from tiny_llm import CHAT_TEMPLATE, byte_tokenizer

from l2v_hub import BuildError
from l2v_hub.builder.pairs import (
    COT_INSTRUCTION,
    DIRECT_INSTRUCTION,
    ContrastivePair,
    PairSet,
    builtin_pairs,
    load_jsonl,
    load_pairs,
    prompt_contrast,
    read_spans,
    render_pair,
    tokenize_pairs,
)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_builtin_set_and_its_provenance() -> None:
    pairs = builtin_pairs()
    info = pairs.info()
    assert (info.source, info.count, pairs.style) == ("builtin", len(pairs), "response")
    assert len(pairs) >= 200
    assert info.sha256 == hashlib.sha256(pairs.canonical_bytes()).hexdigest()
    assert builtin_pairs().sha256() == info.sha256  # stable across calls


def test_canonical_bytes_are_compact_sorted_utf8_json() -> None:
    pairs = PairSet("x", "response", (ContrastivePair("2 × 3?", "step… 6", "6"),))
    raw = pairs.canonical_bytes()
    assert raw == '{"format":"l2v-hub-pairs/1","pairs":[["2 × 3?","step… 6","6"]],"style":"response"}'.encode()


def test_hash_covers_every_field_the_order_and_the_style() -> None:
    base = PairSet("x", "response", (ContrastivePair("a", "b", "c"), ContrastivePair("d", "e", "f")))
    variants = [
        replace(base, pairs=(ContrastivePair("a!", "b", "c"), base.pairs[1])),
        replace(base, pairs=(ContrastivePair("a", "b!", "c"), base.pairs[1])),
        replace(base, pairs=(ContrastivePair("a", "b", "c!"), base.pairs[1])),
        replace(base, pairs=base.pairs[::-1]),
        replace(base, style="instruction"),
    ]
    digests = {base.sha256(), *(v.sha256() for v in variants)}
    assert len(digests) == 1 + len(variants)
    assert replace(base, source="renamed").sha256() == base.sha256()  # the source is a label


def test_prompt_contrast_uses_the_two_instructions() -> None:
    pairs = prompt_contrast(["What is 2 + 2?"])
    assert pairs.style == "instruction" and pairs.source == "prompt-contrast"
    assert pairs.pairs[0] == ContrastivePair("What is 2 + 2?", COT_INSTRUCTION, DIRECT_INSTRUCTION)
    assert len(prompt_contrast()) == len(builtin_pairs())


def test_jsonl_round_trip(tmp_path: Path) -> None:
    rows = [{"problem": "p1", "cot": "c1", "direct": "d1"}, {"problem": "p2", "cot": "c2", "direct": "d2"}]
    path = _write(tmp_path / "mine.jsonl", [json.dumps(r) for r in rows[:1]] + ["", json.dumps(rows[1])])
    pairs = load_jsonl(path)
    assert pairs.source == "jsonl:mine.jsonl"
    assert [p.problem for p in pairs.pairs] == ["p1", "p2"]
    assert load_pairs(path) == pairs


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"problem": "p", "cot": "c"}', "line 2: field 'direct'"),
        ('{"problem": "p", "cot": 3, "direct": "d"}', "line 2: field 'cot'"),
        ('{"problem": "  ", "cot": "c", "direct": "d"}', "line 2: field 'problem'"),
    ],
)
def test_jsonl_errors_name_line_and_field(tmp_path: Path, line: str, expected: str) -> None:
    good = json.dumps({"problem": "p", "cot": "c", "direct": "d"})
    path = _write(tmp_path / "bad.jsonl", [good, line])
    with pytest.raises(BuildError, match=expected):
        load_jsonl(path)


def test_empty_or_unknown_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="holds no pairs"):
        load_jsonl(_write(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(BuildError, match="expected 'builtin', 'prompt-contrast' or an existing"):
        load_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(BuildError, match="at least one pair"):
        PairSet("x", "response", ())


def test_render_with_chat_template_ends_at_the_turn_marker() -> None:
    tok = byte_tokenizer(chat_template=True)
    pair = ContrastivePair("Q?", "Think. A.", "A.")
    cot, direct = render_pair(pair, "response", tok)
    assert cot == "<|user|>Q?</s><|assistant|>Think. A.</s>"
    assert direct == "<|user|>Q?</s><|assistant|>A.</s>"
    cot, direct = render_pair(ContrastivePair("Q?", COT_INSTRUCTION, DIRECT_INSTRUCTION), "instruction", tok)
    assert cot == f"<|user|>Q?\n\n{COT_INSTRUCTION}</s><|assistant|>"
    assert direct.endswith(f"{DIRECT_INSTRUCTION}</s><|assistant|>")


def test_render_without_template_concatenates() -> None:
    tok = byte_tokenizer()
    assert render_pair(ContrastivePair("Q?", "long", "A."), "response", tok) == ("Q?\n\nlong", "Q?\n\nA.")


def test_tokenize_adds_no_second_set_of_special_tokens() -> None:
    tok = byte_tokenizer(chat_template=True)
    (cot, _), = tokenize_pairs(PairSet("x", "response", (ContrastivePair("Q", "C", "D"),)), tok)
    assert tok.decode(cot) == "<|user|>Q</s><|assistant|>C</s>"
    assert cot[-1] == tok.eos_token_id


def test_response_spans_start_after_the_generation_prompt() -> None:
    tok = byte_tokenizer(chat_template=True)
    pairs = PairSet("x", "response", (ContrastivePair("Q", "Think. A.", "A."),))
    tokens = tokenize_pairs(pairs, tok)
    # <|user|> Q </s> <|assistant|> = 4 tokens; then the answer's bytes and </s>.
    assert read_spans(pairs, tok, tokens, "response_mean") == [((4, 4 + 9 + 1), (4, 4 + 2 + 1))]
    assert read_spans(pairs, tok, tokens, "response_first") == [((4, 5), (4, 5))]
    assert read_spans(pairs, tok, tokens, "last") == [((13, 14), (6, 7))]
    assert tok.convert_ids_to_tokens(tokens[0][0][4]) == "T"
    plain = byte_tokenizer()
    tokens = tokenize_pairs(pairs, plain)  # "Q\n\n" then the answer
    assert read_spans(pairs, plain, tokens, "response_first") == [((3, 4), (3, 4))]


def test_a_read_the_pairs_cannot_give_is_refused() -> None:
    tok = byte_tokenizer(chat_template=True)
    contrast = prompt_contrast(["Q"])
    with pytest.raises(BuildError, match=r"'response_mean' needs response-style pairs.*'prompt-contrast' "
                                         r"are instruction-style"):
        read_spans(contrast, tok, tokenize_pairs(contrast, tok), "response_mean")
    assert read_spans(contrast, tok, tokenize_pairs(contrast, tok), "last")  # the prompt's end
    pairs = PairSet("x", "response", (ContrastivePair("Q", "C", "D"),))
    with pytest.raises(BuildError, match="read must be one of 'last', 'response_mean', 'response_first'"):
        read_spans(pairs, tok, tokenize_pairs(pairs, tok), "mean")
    # A template whose generation prompt is not what the assistant turn starts with.
    odd = byte_tokenizer(chat_template=True)
    odd.chat_template = CHAT_TEMPLATE.replace("<|assistant|>{% endif %}", "<|assistant|>Sure{% endif %}")
    with pytest.raises(BuildError, match=r"pairs 'x', pair 0 \(cot\): the prompt with the generation "
                                         "prompt \\(8 tokens\\) is not a token prefix"):
        read_spans(pairs, odd, tokenize_pairs(pairs, odd), "response_first")
