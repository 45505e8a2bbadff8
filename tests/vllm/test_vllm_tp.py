"""Tensor parallel 2 on the CPU (two workers, eager): each rank steers the same tokens, so the
result equals ``l2v_hub.patch`` + transformers ``generate``.

Marked ``tp`` and run by ``make test-vllm-tp``, not ``make test-vllm``: on the shared 2-core
machine one run took 8.5 min, and its pytest process did not exit after passing."""

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

A = "pack-a@1.0.0"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("vllm-tp")
    return {"model": tiny_qwen2(root / "model"),
            A: make_pack(root / "a", name="pack-a", op="norm_preserving_add", positions="all",
                         seed=1, scale=4.0, strength=0.8, layers=(0, 2))}


@pytest.mark.tp
def test_tensor_parallel_two(tiny: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # One core per rank: vLLM binds each CPU worker to a NUMA node by default, and this
    # machine has one.
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0|1")
    config = {"l2v_hub": {"packs": [str(tiny[A])], "model_id": MODEL_ID}}
    llm = engine(tiny["model"], config, enforce_eager=True, tensor_parallel_size=2,
                 distributed_executor_backend="mp")
    try:
        got = run(llm, [PROMPTS[0], PROMPTS[2], PROMPTS[1]],
                  [{"l2v_pack": A, "l2v_positions": "generated"}, {"l2v_pack": A}, None])
    finally:
        close(llm)
    assert_close(got[:1], reference(tiny["model"], [PROMPTS[0]], tiny[A], positions="generated"))
    assert_close(got[1:2], reference(tiny["model"], [PROMPTS[2]], tiny[A]))
    assert_close(got[2:], reference(tiny["model"], [PROMPTS[1]]))
