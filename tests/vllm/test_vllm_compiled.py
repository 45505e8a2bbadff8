"""The plugin in vLLM's default compiled mode (torch.compile, inductor), with chunked prefill
(32 tokens a step: the 41- and 70-token prompts are prefilled in chunks) and prefix caching:
every steered request equals ``l2v_hub.patch`` + transformers ``generate``; unsteered requests
in the same batches equal a plain engine exactly."""

from __future__ import annotations

import pytest
from vllm_fixtures import (
    MODEL_ID,
    NEW_TOKENS,
    PROMPTS,
    assert_close,
    close,
    engine,
    make_pack,
    reference,
    run,
    tiny_qwen2,
)

from l2v_hub.metadata import POSITIONS

LONG = tuple(range(6, 76))  # 70 tokens: two full 32-token blocks for the prefix cache
A, B = "pack-a@1.0.0", "pack-b@1.0.0"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("vllm-compiled")
    return {
        "model": tiny_qwen2(root / "model"),
        A: make_pack(root / "a", name="pack-a", op="norm_preserving_add", positions="all",
                     seed=1, scale=4.0, strength=0.8, layers=(1,)),
        B: make_pack(root / "b", name="pack-b", op="add", positions="generated", seed=2,
                     scale=3.0, strength=0.6, layers=(0, 2)),
    }


@pytest.fixture(scope="module")
def plain(tiny: dict) -> dict:
    """What a plain compiled engine (no l2v_hub configuration) answers, then shut down."""
    llm = engine(tiny["model"], None, max_num_batched_tokens=32)
    try:
        results = run(llm, [*PROMPTS, LONG], [None] * (len(PROMPTS) + 1))
    finally:
        close(llm)
    return dict(zip([*PROMPTS, LONG], results, strict=True))


@pytest.fixture(scope="module")
def llm(tiny: dict, plain: dict):
    config = {"l2v_hub": {"packs": [str(tiny[A]), str(tiny[B])], "model_id": MODEL_ID}}
    llm = engine(tiny["model"], config, max_num_batched_tokens=32)
    yield llm
    close(llm)


def test_every_op_and_policy_matches_transformers(tiny: dict, plain: dict, llm) -> None:
    cases = [(name, policy, prompt) for name in (A, B) for policy in POSITIONS
             for prompt in (PROMPTS[0], PROMPTS[2])]
    got = run(llm, [p for _, _, p in cases],
              [{"l2v_pack": n, "l2v_positions": policy} for n, policy, _ in cases])
    for (name, policy, prompt), result in zip(cases, got, strict=True):
        want = reference(tiny["model"], [prompt], tiny[name], positions=policy)
        assert_close([result], want)
        # Not vacuous: the pack moves the log-probabilities of this prompt.
        assert max(abs(a - b) for a, b in zip(result[1], plain[prompt][1], strict=True)) > 1e-3


def test_mixed_batch_two_packs_and_plain(tiny: dict, plain: dict, llm) -> None:
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[1], PROMPTS[2], PROMPTS[2], LONG]
    extra = [None, {"l2v_pack": A, "l2v_strength": 0.3}, None,
             {"l2v_pack": B, "l2v_strength": 1.5}, {"l2v_pack": "none"}, None]
    got = run(llm, prompts, extra)
    for i in (0, 2, 4, 5):
        assert got[i] == plain[prompts[i]]  # bit for bit: tokens and log-probabilities
    assert_close([got[1]], reference(tiny["model"], [PROMPTS[1]], tiny[A], strength=0.3))
    assert_close([got[3]], reference(tiny["model"], [PROMPTS[2]], tiny[B], strength=1.5))


def _cached(llm, prompt: tuple[int, ...], extra: dict | None) -> tuple[int, tuple]:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, min_tokens=NEW_TOKENS,
                            logprobs=0, extra_args=extra, ignore_eos=True)
    out = llm.generate([{"prompt_token_ids": list(prompt)}], params, use_tqdm=False)[0]
    c = out.outputs[0]
    logprobs = [step[t].logprob for step, t in zip(c.logprobs, c.token_ids, strict=True)]
    return out.num_cached_tokens, (list(c.token_ids), logprobs)


def test_prefix_cache_never_mixes_steering(tiny: dict, plain: dict, llm) -> None:
    prompt = tuple(range(180, 250))  # 70 tokens no other test sent (its blocks are uncached)
    hits, first = _cached(llm, prompt, {"l2v_pack": "none"})
    hits_again, again = _cached(llm, prompt, {"l2v_pack": "none"})
    assert hits == 0 and hits_again >= 64 and again == first  # the cache works
    for name, policy in ((A, "all"), (B, "first_and_generated")):
        extra = {"l2v_pack": name, "l2v_positions": policy}
        hits, steered = _cached(llm, prompt, extra)
        assert hits == 0, f"{name} {policy} reused another steering's KV"
        assert_close([steered], reference(tiny["model"], [prompt], tiny[name], positions=policy))
        hits, steered_again = _cached(llm, prompt, extra)
        assert hits >= 64 and steered_again[0] == steered[0]  # same steering: shared
    hits, plain_again = _cached(llm, prompt, None)
    assert hits >= 64 and plain_again == first


@pytest.mark.parametrize(("extra", "message"), [
    ({"l2v_pack": "pack-c@1.0.0"}, "l2v_pack 'pack-c@1.0.0' is not loaded in this engine; "
                                   f"loaded: {A}, {B}"),
    ({"l2v_pack": A, "l2v_strength": "strong"}, "l2v_strength: strength must be a number"),
    ({"l2v_pack": A, "l2v_strength": 50}, "strength must be finite and within [-10, 10]"),
    ({"l2v_pack": A, "l2v_positions": "last"}, "l2v_positions must be one of 'first_and_generat"),
    ({"l2v_strength": 0.5}, "this engine has no default pack"),
])
def test_bad_requests_fail_alone(llm, plain: dict, extra: dict, message: str) -> None:
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError) as raised:
        run(llm, [PROMPTS[0]], [extra])
    assert message in str(raised.value)
    assert run(llm, [PROMPTS[1]], [None]) == [plain[PROMPTS[1]]]  # still serving
