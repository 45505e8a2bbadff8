"""--generate: the LLM's own two answers become the pairs."""

from __future__ import annotations

import torch
from tiny_llm import byte_tokenizer, tiny_llama

from l2v_hub import TargetSpec, build_pack
from l2v_hub.builder.generate import generate_pairs
from l2v_hub.builder.pairs import ContrastivePair, PairSet, render_pair


def _problems() -> PairSet:
    pairs = tuple(ContrastivePair(f"What is {i} + {i}?" + " Be brief." * (i % 3), "-", "-") for i in range(5))
    return PairSet("mine", "response", pairs)


def test_generated_answers_are_the_models_greedy_continuations() -> None:
    model, tok = tiny_llama(seed=9), byte_tokenizer(chat_template=True)
    generated = generate_pairs(model, tok, _problems(), cot_tokens=12, direct_tokens=4, batch_size=2, progress=False)
    assert generated.source == "mine+generate" and generated.style == "response"
    assert [p.problem for p in generated.pairs] == [p.problem for p in _problems().pairs]
    # Each answer equals generating for that prompt alone, unpadded: left padding changes nothing.
    first = generated.pairs[3]
    prompt, _ = render_pair(ContrastivePair(first.problem, "Let's think step by step.", "x"), "instruction", tok)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    alone = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert first.cot == tok.decode(alone[0, ids.shape[1]:], skip_special_tokens=True).strip()
    assert 0 < len(first.direct) <= 4  # at most 4 byte tokens, decoded


def test_build_with_generate_records_the_source() -> None:
    model, tok = tiny_llama(seed=9), byte_tokenizer(chat_template=True)
    target = TargetSpec("org/vlm", 48, 5, "qwen2_vl")
    pack = build_pack(model, tok, target, _problems(), generate=True, source_id="org/tiny", progress=False)
    assert pack.method.pairs.source == "mine+generate" and pack.method.pairs.count == 5
