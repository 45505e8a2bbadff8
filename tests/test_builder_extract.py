"""Extraction: planted-direction recovery, padding, batching, PCA sign, block lookup."""

from __future__ import annotations

import random

import pytest
import torch
from tiny_llm import byte_tokenizer, tiny_llama

from l2v_hub import BuildError
from l2v_hub.builder.extract import _decoder_blocks, extract, make_batches
from l2v_hub.builder.pairs import (
    ContrastivePair,
    PairSet,
    builtin_pairs,
    read_spans,
    tokenize_pairs,
)

COT_END, DIRECT_END = "abcdefghij", "klmnopqrst"


def _planted_model(direction: torch.Tensor, noise: float = 0.02) -> torch.nn.Module:
    """A tiny Llama whose blocks are identities (attention and MLP write nothing), so every
    block's output at a token is that token's embedding; the bytes CoT texts end with carry
    ``direction`` in their embedding, the bytes direct texts end with do not, and the pad
    token's embedding is an unrelated unit vector.
    """
    model = tiny_llama(hidden=direction.numel(), layers=3, seed=1)
    tok = byte_tokenizer()
    with torch.no_grad():
        for block in model.model.layers:
            block.self_attn.o_proj.weight.zero_()
            block.mlp.down_proj.weight.zero_()
        emb = model.get_input_embeddings().weight
        emb.copy_(noise * torch.randn_like(emb))
        # A pad embedding as large as the direction: reading a pad position shows at once.
        emb[0] = torch.nn.functional.normalize(torch.randn(direction.numel()), dim=0)
        for ch in COT_END:
            emb[tok.convert_tokens_to_ids(ch)] += direction
    return model


def _planted_pairs(n: int = 60, seed: int = 0) -> PairSet:
    r = random.Random(seed)
    pairs = []
    for i in range(n):
        body = "x" * r.randint(3, 40)
        # Direct texts all have one length, CoT texts vary: CoT rows are the padded ones.
        pairs.append(ContrastivePair(f"problem {i:03d}", body + r.choice(COT_END), r.choice(DIRECT_END)))
    return PairSet("planted", "response", tuple(pairs))


@pytest.fixture(scope="module")
def planted() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    v = torch.randn(32, generator=g)
    return v / v.norm()


@pytest.mark.parametrize("method", ["mean-diff", "pca"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_recovers_a_planted_direction(planted: torch.Tensor, method: str, side: str) -> None:
    model = _planted_model(planted)
    tokens = tokenize_pairs(_planted_pairs(), byte_tokenizer())
    result = extract(model, tokens, method=method, batch_size=8, padding_side=side, progress=False)
    assert result.directions.shape == (3, 32)
    for block in range(3):
        cos = torch.nn.functional.cosine_similarity(result.directions[block], planted, dim=0)
        assert float(cos) >= 0.99, (block, float(cos))
    assert result.separation == [1.0, 1.0, 1.0]
    assert result.count == 60


def test_reading_the_last_padded_position_would_lose_the_direction(planted: torch.Tensor) -> None:
    """The recovery check can fail: with identity blocks a state is its token's embedding, and
    the last position of a right-padded row is a pad token that carries no direction.
    """
    model = _planted_model(planted)
    emb = model.get_input_embeddings().weight.detach()
    batches = make_batches(tokenize_pairs(_planted_pairs(), byte_tokenizer()), 8, padding_side="right")

    def signed_mean(column: list[torch.Tensor]) -> torch.Tensor:
        return sum((b.sign[:, None].float() * emb[ids]).sum(0) for b, ids in zip(batches, column, strict=True))

    at_last = signed_mean([b.input_ids[torch.arange(len(b.start)), b.start] for b in batches])
    at_end = signed_mean([b.input_ids[:, -1] for b in batches])
    cos = torch.nn.functional.cosine_similarity
    assert float(cos(at_last, planted, dim=0)) >= 0.99
    assert float(cos(at_end, planted, dim=0)) < 0.9


def test_left_and_right_padding_give_the_same_directions() -> None:
    model = tiny_llama(seed=3)
    tokens = tokenize_pairs(PairSet("b", "response", builtin_pairs().pairs[:24]), byte_tokenizer(chat_template=True))
    left = extract(model, tokens, batch_size=5, padding_side="left", progress=False)
    right = extract(model, tokens, batch_size=5, padding_side="right", progress=False)
    torch.testing.assert_close(left.directions, right.directions, rtol=1e-4, atol=1e-5)
    assert left.dispersion == pytest.approx(right.dispersion, rel=1e-4)


def test_batch_size_does_not_change_the_result() -> None:
    model = tiny_llama(seed=4)
    tokens = tokenize_pairs(PairSet("b", "response", builtin_pairs().pairs[:10]), byte_tokenizer())
    one = extract(model, tokens, batch_size=1, progress=False)
    many = extract(model, tokens, batch_size=20, progress=False)
    torch.testing.assert_close(one.directions, many.directions, rtol=1e-4, atol=1e-5)


def test_a_source_llm_offloaded_by_accelerate_gives_the_same_directions() -> None:
    """cpu_offload leaves every weight on 'meta' until its forward: inputs go to the execution
    device, not to the embedding's ('meta'), which raised "Cannot copy out of meta tensor"."""
    import accelerate

    tokens = tokenize_pairs(PairSet("b", "response", builtin_pairs().pairs[:8]), byte_tokenizer())
    reference = extract(tiny_llama(seed=6), tokens, batch_size=4, progress=False)
    offloaded = tiny_llama(seed=6)
    accelerate.cpu_offload(offloaded, execution_device=torch.device("cpu"))
    assert offloaded.get_input_embeddings().weight.device.type == "meta"
    result = extract(offloaded, tokens, batch_size=4, progress=False)
    torch.testing.assert_close(result.directions, reference.directions, rtol=1e-5, atol=1e-6)


def test_mean_difference_matches_unbatched_hidden_states() -> None:
    """Against transformers' own output_hidden_states, one text at a time (index l+1 = block l)."""
    model = tiny_llama(seed=5)
    tok = byte_tokenizer()
    tokens = tokenize_pairs(PairSet("b", "response", builtin_pairs().pairs[:6]), tok)
    result = extract(model, tokens, batch_size=4, progress=False)
    diffs = []
    with torch.no_grad():
        for cot, direct in tokens:
            states = [model(torch.tensor([ids]), output_hidden_states=True).hidden_states for ids in (cot, direct)]
            diffs.append(torch.stack([states[0][b + 1][0, -1] - states[1][b + 1][0, -1] for b in range(4)]))
    # The last block's entry in hidden_states has the final norm applied; compare the others.
    expected = torch.stack(diffs).mean(0)
    torch.testing.assert_close(result.mean_difference[:3], expected[:3], rtol=1e-4, atol=1e-5)


def _response_start(ids: list[int], tok, problem: str, chat: bool) -> int:
    """Where the response begins, found without rendering a prompt: after the one <|assistant|>
    token of the test template, or after the problem's bytes and the blank line."""
    if chat:
        return ids.index(tok.convert_tokens_to_ids("<|assistant|>")) + 1
    return len(problem.encode()) + 2


def _mixed_pairs(n: int = 9) -> PairSet:
    # Answers from 2 to ~40 bytes, CoT and direct alike: batches mix lengths in both signs.
    pairs = [ContrastivePair(p.problem, p.cot[: 2 + 7 * i], p.direct[: 2 + (5 * i) % 13])
             for i, p in enumerate(builtin_pairs().pairs[:n])]
    return PairSet("mixed", "response", tuple(pairs))


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "plain"])
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("read", ["response_mean", "response_first", "last"])
def test_a_read_span_gives_what_the_hidden_states_give(read: str, side: str, chat: bool) -> None:
    """Against output_hidden_states of each text alone: the float32 mean over the response tokens
    (response_mean), the first response token (response_first) or the last token (last); in
    batches of 4 rows of mixed lengths, padded on either side."""
    model = tiny_llama(seed=8)
    tok = byte_tokenizer(chat_template=chat)
    pairs = _mixed_pairs()
    tokens = tokenize_pairs(pairs, tok)
    result = extract(model, tokens, spans=read_spans(pairs, tok, tokens, read), batch_size=4,
                     padding_side=side, progress=False)
    diffs = []
    with torch.no_grad():
        for pair, ids in zip(pairs.pairs, tokens, strict=True):
            states = []
            for text in ids:
                start = _response_start(text, tok, pair.problem, chat)
                span = {"response_mean": slice(start, len(text)), "response_first": slice(start, start + 1),
                        "last": slice(len(text) - 1, len(text))}[read]
                hidden = model(torch.tensor([text]), output_hidden_states=True).hidden_states
                states.append(torch.stack([hidden[b + 1][0, span].float().mean(0) for b in range(3)]))
            diffs.append(states[0] - states[1])
    expected = torch.stack(diffs).mean(0)
    torch.testing.assert_close(result.mean_difference[:3], expected, rtol=1e-4, atol=1e-5)
    # The three reads are different readings (the test could fail).
    if read != "last":
        last = extract(model, tokens, batch_size=4, padding_side=side, progress=False)
        assert not torch.allclose(last.mean_difference, result.mean_difference, atol=1e-3)


def test_a_span_outside_its_text_is_refused() -> None:
    model = tiny_llama()
    with pytest.raises(BuildError, match=r"pair 0: span \[1, 3\) is not a non-empty range of its 2 tokens"):
        extract(model, [([5, 6], [7])], spans=[((1, 3), (0, 1))], progress=False)
    with pytest.raises(BuildError, match="pair 0: span"):
        extract(model, [([5, 6], [7])], spans=[((0, 1), (1, 1))], progress=False)
    with pytest.raises(BuildError, match=r"one \(CoT, direct\) span per pair: 2 for 1 pairs"):
        extract(model, [([5, 6], [7])], spans=[((0, 1), (0, 1))] * 2, progress=False)


def test_diagnostics_off_keeps_no_differences_and_same_direction(planted: torch.Tensor) -> None:
    model = _planted_model(planted)
    tokens = tokenize_pairs(_planted_pairs(), byte_tokenizer())
    lean = extract(model, tokens, keep_differences=False, progress=False)
    full = extract(model, tokens, progress=False)
    torch.testing.assert_close(lean.directions, full.directions)
    assert lean.dispersion is None and lean.separation is None
    assert full.dispersion is not None and all(d > 0 for d in full.dispersion)


def test_pca_sign_makes_cot_project_higher(planted: torch.Tensor) -> None:
    model = _planted_model(-planted)
    tokens = tokenize_pairs(_planted_pairs(), byte_tokenizer())
    result = extract(model, tokens, method="pca", progress=False)
    assert float(result.directions[0] @ planted) < -0.99
    assert float(result.directions[0].norm()) == pytest.approx(1.0, abs=1e-5)


def test_probe_block_projection_is_small_and_separates() -> None:
    model = _planted_model(torch.ones(32) / 32**0.5)
    result = extract(model, tokenize_pairs(_planted_pairs(n=10), byte_tokenizer()), probe_block=1, progress=False)
    proj = result.projection
    assert proj["block"] == 1 and len(proj["cot"]) == len(proj["direct"]) == 10
    cot_x = [p[0] for p in proj["cot"]]
    direct_x = [p[0] for p in proj["direct"]]
    assert min(cot_x) > max(direct_x) or max(cot_x) < min(direct_x)


def test_gpt2_blocks_are_found_and_read() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=262, n_embd=32, n_layer=2, n_head=4, n_positions=512)).eval()
    assert _decoder_blocks(model) is model.transformer.h
    tokens = tokenize_pairs(PairSet("b", "response", builtin_pairs().pairs[:6]), byte_tokenizer())
    left = extract(model, tokens, batch_size=4, padding_side="left", progress=False)
    right = extract(model, tokens, batch_size=4, padding_side="right", progress=False)
    # Absolute positions: equal only because position_ids count real tokens.
    torch.testing.assert_close(left.directions, right.directions, rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_named() -> None:
    model = tiny_llama()
    with pytest.raises(BuildError, match="extraction must be"):
        extract(model, [([1], [2])], method="lda")
    with pytest.raises(BuildError, match="batch_size"):
        extract(model, [([1], [2])], batch_size=0)
    with pytest.raises(BuildError, match="padding_side"):
        extract(model, [([1], [2])], padding_side="middle")
    with pytest.raises(BuildError, match="cannot find the decoder blocks of Linear"):
        _decoder_blocks(torch.nn.Linear(2, 2))
