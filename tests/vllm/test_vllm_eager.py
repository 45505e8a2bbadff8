"""The plugin with ``enforce_eager=True`` (no torch.compile): every op and positions policy,
in one batch with unsteered requests, equals ``l2v_hub.patch`` + transformers ``generate``. The
KV cache has room for 5 blocks of 32 tokens only, so requests are preempted and recomputed."""

from __future__ import annotations

import pytest
from vllm_fixtures import (
    MODEL_ID,
    NEW_TOKENS,
    assert_close,
    close,
    engine,
    make_pack,
    reference,
    run,
    sampled,
    tiny_qwen2,
)

from l2v_hub.metadata import POSITIONS

A, B = "pack-a@1.0.0", "pack-b@2.0.0"
# Each crosses a 32-token block boundary while it decodes: a running request then needs a block
# that the 5-block cache does not have, and the scheduler preempts one.
PROMPTS = (tuple(range(10, 38)), tuple(range(60, 120)), tuple(range(130, 159)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("vllm-eager")
    b = make_pack(root / "b", name="pack-b", op="add", positions="generated", seed=2,
                  scale=3.0, strength=0.6, layers=(0, 2))
    from l2v_hub.pack import Pack

    Pack.from_pretrained(b).with_version("2.0.0").save_pretrained(b)
    return {
        "model": tiny_qwen2(root / "model"),
        A: make_pack(root / "a", name="pack-a", op="norm_preserving_add", positions="all",
                     seed=1, scale=4.0, strength=0.8, layers=(1,)),
        B: b,
    }


@pytest.fixture(scope="module")
def llm(tiny: dict):
    # pack-b is the default: requests without l2v_pack get it at its own strength and policy.
    config = {"l2v_hub": {"packs": [str(tiny[A])], "default": str(tiny[B]),
                          "model_id": MODEL_ID}}
    llm = engine(tiny["model"], config, enforce_eager=True, max_model_len=128,
                 num_gpu_blocks_override=5, disable_log_stats=False)
    yield llm
    close(llm)


def test_every_op_and_policy_matches_transformers(tiny: dict, llm) -> None:
    cases = [(name, policy) for name in (A, B) for policy in POSITIONS]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(len(cases))]
    got = run(llm, [*prompts, PROMPTS[0], PROMPTS[1]],
              [*({"l2v_pack": n, "l2v_positions": p} for n, p in cases), {"l2v_pack": "none"},
               None])
    for (name, policy), prompt, result in zip(cases, prompts, got, strict=False):
        assert_close([result], reference(tiny["model"], [prompt], tiny[name], positions=policy))
    assert_close([got[-2]], reference(tiny["model"], [PROMPTS[0]]))
    assert_close([got[-1]], reference(tiny["model"], [PROMPTS[1]], tiny[B]))  # the default
    preempted = [m.value for m in llm.get_metrics() if m.name == "vllm:num_preemptions"]
    assert preempted and preempted[0] > 0  # recompute after preemption was exercised


def test_every_sample_of_n_above_one_is_steered(tiny: dict, llm) -> None:
    # vLLM fans a request with n > 1 out into child requests: each must carry the parent's
    # steering and its own positions. vLLM refuses n > 1 with temperature 0, so top_k=1 makes
    # every sample the argmax (log-probabilities are of the raw logits): each equals the greedy
    # reference.
    from vllm import SamplingParams

    extra = {"l2v_pack": A, "l2v_positions": "prompt_last_and_generated"}
    params = SamplingParams(n=2, temperature=1.0, top_k=1, max_tokens=NEW_TOKENS,
                            min_tokens=NEW_TOKENS, logprobs=0, extra_args=extra, ignore_eos=True)
    out = llm.generate([{"prompt_token_ids": list(PROMPTS[2])}], params, use_tqdm=False)[0]
    want = reference(tiny["model"], [PROMPTS[2]], tiny[A], positions=extra["l2v_positions"])
    assert len(out.outputs) == 2
    assert_close([sampled(sample) for sample in out.outputs], want * 2)
