"""The plugin with ``enforce_eager=True`` (no torch.compile): every op and positions policy,
in one batch with unsteered requests, equals ``l2v_hub.patch`` + transformers ``generate``."""

from __future__ import annotations

import pytest
from vllm_fixtures import (
    MODEL_ID,
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

A, B = "pack-a@1.0.0", "pack-b@2.0.0"


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
    llm = engine(tiny["model"], config, enforce_eager=True)
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
