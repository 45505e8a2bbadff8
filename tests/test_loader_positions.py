"""The steered positions are exactly those each policy names, checked by capturing a steered
block's output before and after the steering hook, forward by forward, through generate (with and
without the cache, left-padded), a manual loop, and a Qwen2-VL prompt with real image tokens; and
BLIP-2's (InstructBLIP's) steered generate against the same push added to its blocks by hand."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from conftest import random_pack
from tiny_models import (
    HIDDEN,
    IMAGE,
    IMAGE_PREFIX,
    LAYERS,
    VISION_END,
    VISION_START,
    build,
    generate,
    image_inputs,
    left_pad,
    qwen2_vl_image_inputs,
    with_image,
)

import l2v_hub
from l2v_hub import L2VHubError
from l2v_hub.errors import ArgumentError
from l2v_hub.loader.families import TRACKED_AT
from l2v_hub.metadata import POSITIONS

BLOCK = 2
PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17, 18]]
IMAGE_PROMPTS = [
    [5, VISION_START, *[IMAGE] * 4, VISION_END, 6, 7],
    [8, 9, 10, VISION_START, *[IMAGE] * 4, VISION_END, 11, 12, 13],
]


class Recorder:
    """Per forward, a [B, T] mask of the tokens whose block output the patch changed."""

    def __init__(self, block: torch.nn.Module) -> None:
        self.raw: list[torch.Tensor] = []
        self.steered: list[torch.Tensor] = []
        first = lambda out: (out[0] if isinstance(out, tuple) else out).detach().clone()  # noqa: E731
        self._handles = [
            block.register_forward_hook(lambda m, a, out: self.raw.append(first(out)), prepend=True),
            block.register_forward_hook(lambda m, a, out: self.steered.append(first(out))),
        ]

    def masks(self) -> list[torch.Tensor]:
        for h in self._handles:
            h.remove()
        return [(a != b).any(-1) for a, b in zip(self.raw, self.steered, strict=True)]


def expected(policy: str, prompts: list[list[int]], widths: list[int]) -> list[torch.Tensor]:
    """What ``policy`` steers in each forward, from first principles: forward f sees the last
    widths[f] columns of a sequence of W + f columns (W = the padded prompt width)."""
    width = max(map(len, prompts))
    masks = []
    for f, tokens in enumerate(widths):
        mask = torch.zeros(len(prompts), tokens, dtype=torch.bool)
        for row, prompt in enumerate(prompts):
            pad, length = width - len(prompt), len(prompt)
            for t, column in enumerate(range(width + f - tokens, width + f)):
                if column < pad:
                    continue
                pos = column - pad
                mask[row, t] = {
                    "all": True,
                    "generated": pos >= length,
                    "first_and_generated": pos == 0 or pos >= length,
                    "prompt_last": pos == length - 1,
                    "prompt_last_and_generated": pos >= length - 1,
                }[policy]
        masks.append(mask)
    return masks


def assert_masks(observed: list[torch.Tensor], wanted: list[torch.Tensor]) -> None:
    assert len(observed) == len(wanted)
    for f, (got, want) in enumerate(zip(observed, wanted, strict=True)):
        assert torch.equal(got, want), f"forward {f}: steered {got.int().tolist()}, expected {want.int().tolist()}"


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("policy", POSITIONS)
@pytest.mark.parametrize("model_type", ["llama", "gemma2", "qwen2_vl"])
def test_generate_steers_exactly_the_policy_positions(model_type: str, policy: str,
                                                      use_cache: bool) -> None:
    model = build(model_type)
    ids, mask = left_pad(PROMPTS)
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[BLOCK], positions=policy):
        recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
        generate(model, ids, mask, new_tokens=4, use_cache=use_cache)
        observed = recorder.masks()
    assert_masks(observed, expected(policy, PROMPTS, [m.shape[1] for m in observed]))
    if use_cache:
        assert [m.shape[1] for m in observed] == [ids.shape[1], 1, 1, 1]


@pytest.mark.parametrize("policy", ["first_and_generated", "prompt_last",
                                    "prompt_last_and_generated"])
def test_image_tokens_count_as_positions(policy: str) -> None:
    """Qwen2-VL's M-RoPE position ids compress the 2x2 image tokens; absolute positions do not."""
    model = build("qwen2_vl")
    ids, mask = left_pad(IMAGE_PROMPTS)
    images = qwen2_vl_image_inputs(ids, model, seeds=[0, 1])
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[BLOCK], positions=policy):
        recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
        batch = generate(model, ids, mask, new_tokens=3, **images)
        observed = recorder.masks()
        alone = [generate(model, torch.tensor([p]), new_tokens=3,
                          **qwen2_vl_image_inputs(torch.tensor([p]), model, seeds=[seed]))
                 for seed, p in enumerate(IMAGE_PROMPTS)]
        uncached = generate(model, ids, mask, new_tokens=3, use_cache=False, **images)
    assert_masks(observed, expected(policy, IMAGE_PROMPTS, [ids.shape[1], 1, 1]))
    assert torch.equal(batch.sequences, uncached.sequences)
    for row, single in enumerate(alone):
        assert torch.equal(batch.sequences[row, ids.shape[1]:], single.sequences[0, -3:])
        for a, b, c in zip(batch.logits, single.logits, uncached.logits, strict=True):
            torch.testing.assert_close(a[row], b[0], atol=1e-4, rtol=0)
            torch.testing.assert_close(a[row], c[row], atol=1e-4, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("policy", POSITIONS)
@pytest.mark.parametrize("model_type", sorted(TRACKED_AT))
def test_a_generate_that_runs_an_inner_model_s_generate_steers_the_policy_positions(
        model_type: str, policy: str, use_cache: bool) -> None:
    """Kosmos-2's generate is its text model's generate, BLIP-2's and InstructBLIP's their
    language model's, which never call the top-level forward: the positions must still be
    tracked (they were not for Kosmos-2: every decode step raised L2VHubError). The image tokens
    (BLIP-2: the query tokens' placeholders) are prompt positions like any other."""
    model = build(model_type)
    prompts = [with_image(model_type, p) for p in PROMPTS]
    ids, mask = left_pad(prompts)
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[BLOCK], positions=policy):
        recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
        generate(model, ids, mask, new_tokens=3, use_cache=use_cache,
                 **image_inputs(model_type, ids, mask))
        observed = recorder.masks()
    assert_masks(observed, expected(policy, prompts, [m.shape[1] for m in observed]))
    if use_cache:
        assert [m.shape[1] for m in observed] == [ids.shape[1], 1, 1]


QUERY_TOKEN_FAMILIES = ["blip-2", "instructblip", "instructblipvideo"]


def processor_layout(model_type: str, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch as Blip2Processor / InstructBlipProcessor lay it out: the text is padded
    first, then the placeholders are put in front of each row, so the pads sit between them."""
    prefix = IMAGE_PREFIX[model_type]
    ids, mask = left_pad(prompts)
    return (torch.cat([torch.tensor([prefix] * len(prompts)), ids], 1),
            torch.cat([torch.ones(len(prompts), len(prefix), dtype=mask.dtype), mask], 1))


@pytest.mark.parametrize("policy", POSITIONS)
@pytest.mark.parametrize("model_type", QUERY_TOKEN_FAMILIES)
def test_a_query_token_family_is_steered_like_the_push_added_by_hand(model_type: str,
                                                                     policy: str) -> None:
    """BLIP-2 / InstructBLIP(Video): the query outputs replace their placeholders in input_ids,
    so they are prompt tokens. A patched, cached generate of a left-padded batch of image
    prompts gives exactly what the unpatched model gives with op="add"'s push lambda * s_i * v_i
    added by hand to the blocks' outputs at the positions the policy names (``expected``, from
    first principles); the processor's layout (pads between the placeholders and the text) gives
    the same tokens and logits."""
    model = build(model_type)
    prompts = [with_image(model_type, p) for p in PROMPTS]
    ids, mask = left_pad(prompts)
    options = dict(layers=[0, BLOCK], strength=0.5, op="add", positions=policy)
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), **options) as handle:
        steered = generate(model, ids, mask, new_tokens=4, **image_inputs(model_type, ids, mask))
        text = [p[len(IMAGE_PREFIX[model_type]):] for p in prompts]
        layout, layout_mask = processor_layout(model_type, text)
        laid_out = generate(model, layout, layout_mask, new_tokens=4,
                            **image_inputs(model_type, layout, layout_mask))
        pushes = {i: handle.strength * handle.scales[i] * handle.pack.directions[i]
                  for i in handle.layers}
    wanted = expected(policy, prompts, [ids.shape[1], 1, 1, 1])
    forwards: list[None] = []  # one entry per forward of the language model
    blocks = l2v_hub.loader.find_blocks(model).blocks

    def push(i: int) -> Callable[..., object]:
        def hook(module: torch.nn.Module, args: tuple, output: object) -> object:
            hidden = output[0] if isinstance(output, tuple) else output
            pushed = torch.where(wanted[len(forwards) - 1][..., None], hidden + pushes[i], hidden)
            return (pushed, *output[1:]) if isinstance(output, tuple) else pushed
        return hook

    handles = [model.language_model.register_forward_pre_hook(lambda *a: forwards.append(None)),
               *(blocks[i].register_forward_hook(push(i)) for i in pushes)]
    by_hand = generate(model, ids, mask, new_tokens=4, **image_inputs(model_type, ids, mask))
    for h in handles:
        h.remove()
    assert len(forwards) == 4 and any(m.any() for m in wanted)
    assert torch.equal(steered.sequences, by_hand.sequences)
    assert torch.equal(steered.sequences[:, ids.shape[1]:], laid_out.sequences[:, layout.shape[1]:])
    for step, (a, b, c) in enumerate(zip(steered.logits, by_hand.logits, laid_out.logits,
                                         strict=True)):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=f"step {step}")
        torch.testing.assert_close(a, c, atol=1e-5, rtol=0, msg=f"step {step}")


def test_the_prompt_is_found_by_name_when_generate_takes_something_else_first() -> None:
    """Kosmos2ForConditionalGeneration.generate(pixel_values, image_embeds_position_mask,
    input_ids, ...): a positional image is not the prompt (its 3 channels were taken for a
    3-token prompt, steering position 2 as the prompt's last)."""
    model = build("kosmos-2")
    ids = torch.tensor([with_image("kosmos-2", PROMPTS[0])])
    images = image_inputs("kosmos-2", ids)
    options = dict(max_new_tokens=2, do_sample=False, pad_token_id=0)
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[BLOCK],
                       positions="prompt_last"):
        recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
        model.generate(images["pixel_values"], images["image_embeds_position_mask"], ids,
                       **options)
        observed = recorder.masks()
    assert_masks(observed, expected("prompt_last", [ids[0].tolist()], [ids.shape[1], 1]))


# Issue 12: prompt lookup finds "5 6 7" earlier in this prompt, so the first forward of generate
# holds the 11 prompt tokens and 3 draft tokens.
LOOKUP_PROMPT = [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7]


def assisted_modes() -> dict[str, dict]:
    return {"prompt lookup": {"prompt_lookup_num_tokens": 3},
            "assistant model": {"assistant_model": build("llama", seed=1)}}


@pytest.mark.parametrize("mode", ["prompt lookup", "assistant model"])
@pytest.mark.parametrize("policy", POSITIONS)
def test_assisted_generation_steers_what_plain_greedy_steers(mode: str, policy: str) -> None:
    """Greedy assisted decoding is lossless: the same tokens and logits as plain greedy, which
    holds only if the prompt length comes from what generate was given (11), not from the width of
    its first forward (14, with the drafts)."""
    model = build("llama")
    ids = torch.tensor([LOOKUP_PROMPT])
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[0, BLOCK], strength=0.8,
                       positions=policy):
        plain = generate(model, ids, new_tokens=6)
        recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
        assisted = generate(model, ids, new_tokens=6, **assisted_modes()[mode])
        observed = recorder.masks()
    assert observed[0].shape[1] > len(LOOKUP_PROMPT)  # drafts were verified with the prompt
    assert torch.equal(assisted.sequences, plain.sequences)
    for step, (a, b) in enumerate(zip(assisted.logits, plain.logits, strict=True)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0, msg=f"step {step}")
    first = observed[0][0].nonzero().flatten().tolist()
    prompt = len(LOOKUP_PROMPT)
    want = {"all": list(range(observed[0].shape[1])), "prompt_last": [prompt - 1],
            "generated": list(range(prompt, observed[0].shape[1])),
            "first_and_generated": [0, *range(prompt, observed[0].shape[1])],
            "prompt_last_and_generated": list(range(prompt - 1, observed[0].shape[1]))}[policy]
    assert first == want
    if policy == "prompt_last":  # position 10, once: never again after a crop
        assert sum(int(m.sum()) for m in observed) == 1


def _cache_kwarg(model: torch.nn.Module) -> str:
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@pytest.mark.parametrize("policy", POSITIONS)
@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "no-mask"])
def test_a_manual_loop_steers_what_generate_steers(with_mask: bool, policy: str) -> None:
    model = build("llama")
    prompts = PROMPTS if with_mask else PROMPTS[:1]
    ids, mask = left_pad(prompts)
    handle = l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[BLOCK], positions=policy)
    reference = generate(model, ids, mask, new_tokens=4)
    recorder = Recorder(l2v_hub.loader.find_blocks(model).blocks[BLOCK])
    key, cache, step, logits = _cache_kwarg(model), None, ids, []
    with torch.no_grad():
        for _ in range(4):
            kwargs = {"attention_mask": mask} if with_mask else {}
            out = model(input_ids=step, use_cache=True, **{key: cache}, **kwargs)
            cache = getattr(out, key)
            logits.append(out.logits[:, -1])
            step = out.logits[:, -1:].argmax(-1)
            mask = torch.cat([mask, torch.ones_like(step)], dim=1)
    handle.remove()
    assert_masks(recorder.masks(), expected(policy, prompts, [ids.shape[1], 1, 1, 1]))
    for a, b in zip(logits, reference.logits, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_beam_search_is_the_same_with_and_without_the_cache() -> None:
    model = build("llama")
    ids, mask = left_pad(PROMPTS)
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[0, 2], strength=0.5):
        runs = [model.generate(ids, attention_mask=mask, num_beams=2, max_new_tokens=4,
                               min_new_tokens=4, do_sample=False, use_cache=c, pad_token_id=0)
                for c in (True, False)]
    assert torch.equal(runs[0], runs[1])


def test_a_4d_mask_outside_generate_is_refused() -> None:
    model = build("llama")
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS)):
        with pytest.raises(ArgumentError, match="needs a 2D attention_mask"):
            model(input_ids=torch.tensor([[5, 6]]), attention_mask=torch.ones(1, 1, 2, 2))
        with pytest.raises(ArgumentError, match="must cover the cached tokens"):
            model(input_ids=torch.tensor([[5, 6]]), attention_mask=torch.ones(1, 1))


def test_calling_a_submodule_directly_is_refused_not_mis_steered() -> None:
    model = build("llama")
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS)):
        with pytest.raises(L2VHubError, match="call the patched model itself"):
            model.model(input_ids=torch.tensor([[5, 6]]))  # no forward of the patched model yet
        model(input_ids=torch.tensor([[5, 6, 7, 8]]))
        with pytest.raises(L2VHubError, match=r"last forward had \[batch, tokens\] = \(1, 4\)"):
            model.model(input_ids=torch.tensor([[5, 6]]))
