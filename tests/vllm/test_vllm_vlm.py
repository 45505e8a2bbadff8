"""The plugin on VLMs served with images (eager): for a tiny Qwen2-VL (M-RoPE), LLaVA-OneVision
and Gemma 3, requests with an image under every positions policy, text-only requests and an
unsteered one, in one batch, equal ``l2v_hub.patch`` + transformers ``generate`` on the same
processor output (float32). One engine per family, one family at a time.
"""

from __future__ import annotations

import pytest

# vLLM's modules of these three families import transformers' torchvision image processors, and
# their processors have a video slot that transformers fills only with torchvision: the Makefile
# installs it (scripts/torchvision_without_ops.py), so its absence fails here, not skips.
import torchvision  # noqa: F401
import transformers
from vllm_fixtures import assert_close, close, engine, generate, make_pack, reference, sampled
from vlm_fixtures import FAMILIES, MODEL_IDS, prompts, tiny_vlm

from l2v_hub.metadata import POSITIONS

PACK = "vlm-pack@1.0.0"
TEXT = "What is it?"
TEXT_POLICIES = ("prompt_last_and_generated", "all")


@pytest.fixture(scope="module", params=FAMILIES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    family = request.param
    root = tmp_path_factory.mktemp(family)
    model = tiny_vlm(family, root / "model")
    pack = make_pack(root / "pack", name="vlm-pack", op="norm_preserving_add",
                     positions="prompt_last_and_generated", seed=3, scale=4.0, strength=0.8,
                     layers=(0, 1, 2), model_id=MODEL_IDS[family], model_type=family)
    llm = engine(model, {"l2v_hub": {"packs": [str(pack)], "model_id": MODEL_IDS[family]}},
                 enforce_eager=True, limit_mm_per_prompt={"image": 1, "video": 0})
    yield {"family": family, "model": model, "pack": pack, "llm": llm}
    close(llm)


def _reference(served: dict, inputs: list[dict], policy: str | None) -> list:
    return reference(served["model"], inputs, None if policy is None else served["pack"],
                     model_id=MODEL_IDS[served["family"]],
                     model_class=transformers.AutoModelForImageTextToText,
                     **({} if policy is None else {"positions": policy}))


def test_image_and_text_requests_match_transformers(served: dict) -> None:
    family, model = served["family"], served["model"]
    image, image_hf = prompts(family, model, TEXT, with_image=True)
    text, text_hf = prompts(family, model, TEXT, with_image=False)
    cases = [*((image, image_hf, p) for p in POSITIONS),
             *((text, text_hf, p) for p in TEXT_POLICIES), (image, image_hf, None)]
    outputs = generate(served["llm"], [c[0] for c in cases],
                       [None if p is None else {"l2v_pack": PACK, "l2v_positions": p}
                        for _, _, p in cases])
    for (_, hf, _), out in zip(cases, outputs, strict=True):
        # vLLM's prompt is the processor's, image placeholders expanded: same positions.
        assert list(out.prompt_token_ids) == hf["input_ids"][0].tolist()
    got = {(id(hf), p): sampled(out.outputs[0])
           for (_, hf, p), out in zip(cases, outputs, strict=True)}
    for policy in (*POSITIONS, None):
        inputs = [image_hf, *([text_hf] if policy in TEXT_POLICIES else [])]
        want = _reference(served, inputs, policy)
        assert_close([got[id(hf), policy] for hf in inputs], want)
    plain = got[id(image_hf), None]
    assert got[id(image_hf), "all"][0] != plain[0]  # the pack does change what is generated
