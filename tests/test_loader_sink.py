"""Sink safety (issue 10): the first token of a prompt is an attention sink whose block output is
15-180x the others' norm. The v2 push lambda * s_i * v_i is fixed, so under the pack's defaults the
sink barely turns (< 1 degree) while an ordinary token turns by exactly the angle of h -> h + p.

Checked on states built directly and passed through the real ops, and on a whole tiny Llama whose
sink is planted by a forward hook (position 0 of block 1's output scaled by 100), patched with an
uncalibrated pack (s_i measured at patch time) through generate with the KV cache.
"""

from __future__ import annotations

import math

import pytest
import torch
from conftest import random_pack
from hypothesis import given, settings
from hypothesis import strategies as st
from test_loader_positions import Recorder  # the same before/after-the-hook recorder
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub.loader import find_blocks
from l2v_hub.loader.steer import OPERATIONS

SINK = 100.0  # the planted sink's norm over the ordinary tokens'
PLANTED, STEERED = 1, 2  # the sink is planted at block 1's output, block 2 is steered
PROMPT = "The cat sat on the mat by the door."
NEW_TOKENS = 3


def degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle between a and b per token, in degrees (float64; stable for small angles)."""
    a = a.double() / a.double().norm(dim=-1, keepdim=True)
    b = b.double() / b.double().norm(dim=-1, keepdim=True)
    return torch.rad2deg(2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1)))


# -- states built directly, through the real ops ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), strength=st.floats(0.01, 1.0), op=st.sampled_from(sorted(OPERATIONS)))
def test_a_sink_100x_the_norm_turns_under_1_degree_and_ordinary_tokens_as_specified(
    seed: int, strength: float, op: str
) -> None:
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(1, 12, 64, generator=g)
    h[:, 0] *= SINK * h[:, 1:].norm(dim=-1).median() / h[:, 0].norm()
    v = torch.randn(64, generator=g)
    v /= v.norm()
    s = float(h[0, 1:].norm(dim=-1).median())  # s_i on the ordinary tokens' scale
    p = strength * s * v
    got = OPERATIONS[op](h, p)
    # Both ops move h along h + p (norm_preserving_add then rescales): that is the turn.
    expected = degrees(h, h.double() + p.double())
    torch.testing.assert_close(degrees(h, got), expected, rtol=0, atol=1e-3)
    # ||p|| <= the ordinary norm, so the sink turns by at most asin(1/100) = 0.573 degrees.
    assert float(expected[0, 0]) < 1.0
    assert float(expected[0, 0]) <= math.degrees(math.asin(strength / SINK)) + 1e-6


# -- a whole model with a planted sink ---------------------------------------------------------


def plant_sink(model: torch.nn.Module) -> None:
    """Make position 0 of block PLANTED's output SINK times larger, in every forward that holds
    it (the prompt's; a cached decode step holds one later position)."""

    def hook(module: torch.nn.Module, args: object, output: object) -> object:
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[1] == 1:
            return None
        hidden = hidden.clone()
        hidden[:, 0] *= SINK
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    find_blocks(model).blocks[PLANTED].register_forward_hook(hook)


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


def sink_model() -> torch.nn.Module:
    model = tiny_llama(hidden=32, layers=4)
    plant_sink(model)
    return model


def run(model: torch.nn.Module, tokenizer, **patch_kwargs: object) -> tuple[Recorder, l2v_hub.Patch]:
    ids = torch.tensor([tokenizer(PROMPT)["input_ids"]])
    pack = random_pack(32, 4, scale=None)  # uncalibrated: s_i measured on this model
    with l2v_hub.patch(model, pack, tokenizer=tokenizer, **patch_kwargs) as handle:
        recorder = Recorder(find_blocks(model).blocks[STEERED])
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                       min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
        recorder.masks()  # takes its hooks off
    return recorder, handle


def test_the_planted_sink_is_100x_at_the_steered_block(tokenizer) -> None:
    recorder, _ = run(sink_model(), tokenizer)
    norms = recorder.raw[0][0].norm(dim=-1)
    assert float(norms[0] / norms[1:].median()) > 0.5 * SINK


def test_the_measured_scale_ignores_the_sink(tokenizer) -> None:
    # token_spread leaves the first token out: the same model with and without a sink gets one s_i.
    _, with_sink = run(sink_model(), tokenizer)
    _, without = run(tiny_llama(hidden=32, layers=4), tokenizer)
    torch.testing.assert_close(with_sink.scales, without.scales, rtol=1e-3, atol=0)


@pytest.mark.parametrize("positions", ["first_and_generated", "generated", "all",
                                       "prompt_last_and_generated"])
def test_under_the_pack_defaults_the_sink_turns_under_1_degree(tokenizer, positions: str) -> None:
    recorder, handle = run(sink_model(), tokenizer, positions=positions)
    pack = handle.pack
    assert handle.strength == pack.defaults.strength and handle.layers == (STEERED,)
    p = (pack.defaults.strength * handle.scales[STEERED] * pack.directions[STEERED]).double()
    # The prompt, then one cached token per step (the last new token is never fed back).
    assert [r.shape[1] for r in recorder.raw[1:]] == [1] * (NEW_TOKENS - 1)
    prompt_len = recorder.raw[0].shape[1]
    ordinary_turns = []
    for f, (raw, steered) in enumerate(zip(recorder.raw, recorder.steered, strict=True)):
        for t in range(raw.shape[1]):
            position = t if f == 0 else prompt_len + f - 1
            steers = {"all": True, "generated": position >= prompt_len,
                      "first_and_generated": position == 0 or position >= prompt_len,
                      "prompt_last_and_generated": position >= prompt_len - 1}[positions]
            h, got = raw[0, t], steered[0, t]
            if not steers:
                assert torch.equal(got, h), f"forward {f} token {t} was steered"
                continue
            turn = float(degrees(h, got))
            # The angle of h -> h + p, from h and p alone (norm_preserving_add keeps the norm only).
            assert turn == pytest.approx(float(degrees(h, h.double() + p)), abs=1e-3)
            torch.testing.assert_close(got.norm(), h.norm(), rtol=1e-5, atol=0)
            if position == 0:
                assert turn < 1.0, f"the sink turned by {turn:.3f} degrees"
            else:
                ordinary_turns.append(turn)
    # The same push is a real turn for an ordinary token (v1 would have turned the sink as much).
    assert min(ordinary_turns) > 2.0


def test_at_strength_1_the_sink_still_turns_under_1_degree_as_ordinary_tokens_turn_far(
    tokenizer,
) -> None:
    recorder, _ = run(sink_model(), tokenizer, positions="all", strength=1.0)
    turns = degrees(recorder.raw[0][0], recorder.steered[0][0])
    assert float(turns[0]) < 1.0 and float(turns[1:].min()) > 20.0
