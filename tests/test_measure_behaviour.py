"""l2v_hub.measure.behaviour on a real tiny Llama: the reader's perplexity against an independent
one-forward reference, and a sweep whose shares are what opens_reasoning and the readability rule
give for the answers the patched model writes (re-generated here, independently)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import random_pack
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.measure import answer_problems, builtin_problems, opens_reasoning
from l2v_hub.measure.behaviour import READABLE_PPL, answer_perplexities, behaviour_sweep
from l2v_hub.measure.prompts import encode
from l2v_hub.measure.stats import mcnemar_exact

HIDDEN, LAYERS = 32, 4


@pytest.fixture(scope="module")
def setup():
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    pack = random_pack(HIDDEN, LAYERS, seed=3, scale=4.0)
    control = replace(pack, directions=random_pack(HIDDEN, LAYERS, seed=9).directions)
    return model, tok, pack, control, builtin_problems("calibration", 3)


def test_answer_perplexities_equal_a_one_forward_reference(setup) -> None:
    model, tok, _, _, problems = setup
    texts = ["To solve it", "", "42"]
    got = answer_perplexities(model, tok, problems, texts, "direct")
    assert got[1] is None
    for problem, text, value in zip(problems, texts, got, strict=True):
        if not text:
            continue
        prompt = encode(tok, [problem], "direct")["input_ids"][0]
        written = torch.tensor(tok(text, add_special_tokens=False)["input_ids"])
        ids = torch.cat([prompt, written])[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0].double(), -1)
        nll = -sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(written.tolist()))
        assert value == pytest.approx(math.exp(nll / len(written)), rel=1e-4)


def _opens(model, tok, problems, pack, strength: float) -> list[bool]:
    with l2v_hub.patch(model, pack, strength=strength, positions="prompt_last_and_generated"):
        texts = [a.text for a in answer_problems(model, tok, problems, 4, 2, "direct")]
    ppl = answer_perplexities(model, tok, problems, texts, "direct")
    return [p is not None and p <= READABLE_PPL and opens_reasoning(t, q.question)
            for p, t, q in zip(ppl, texts, problems, strict=True)]


def test_the_sweep_reports_what_the_patched_model_writes(setup) -> None:
    model, tok, pack, control, problems = setup
    base, readable, points = behaviour_sweep(model, tok, pack, control, problems, (0.5, 2.0),
                                   "prompt_last_and_generated", tokens=4, batch_size=2,
                                   readable_ppl=READABLE_PPL)
    assert 0 <= base <= 1 and 0 <= readable <= 1
    assert [p.strength for p in points] == [0.5, 2.0][:len(points)]
    for point in points:
        assert point.positions == "prompt_last_and_generated"
        ours = _opens(model, tok, problems, pack, point.strength)
        theirs = _opens(model, tok, problems, control, point.strength)
        assert point.reasons == round(sum(ours) / len(ours), 4)
        assert point.control_reasons == round(sum(theirs) / len(theirs), 4)
        won = sum(a and not b for a, b in zip(ours, theirs, strict=True))
        lost = sum(b and not a for a, b in zip(ours, theirs, strict=True))
        assert point.p == pytest.approx(mcnemar_exact(won, lost), rel=1e-3)
        assert 0 <= point.readable <= 1
    assert not l2v_hub.unpatch(model)  # the sweep leaves no patch behind


def test_the_sweep_runs_the_whole_grid_when_nothing_was_readable_unpatched(setup) -> None:
    # A reader bound no answer meets: the unpatched answers are not readable either, so the
    # breakage rule (readable share below half the unpatched one) never stops the sweep.
    model, tok, pack, control, problems = setup
    _, _, points = behaviour_sweep(model, tok, pack, control, problems, (0.5, 1.0, 2.0),
                                "prompt_last_and_generated", tokens=4, batch_size=2,
                                readable_ppl=0.0)
    assert len(points) == 3 and all(p.readable == 0 for p in points)
