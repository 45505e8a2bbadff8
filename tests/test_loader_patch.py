"""l2v_hub.patch on tiny random models of every supported type: steering takes effect, is the
same with and without the KV cache and with left padding, and is removed without a trace."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers
from conftest import random_pack
from packaging.version import Version
from tiny_models import (
    HIDDEN,
    LAYERS,
    build,
    forward_options,
    generate,
    image_inputs,
    left_pad,
    model_type_params,
    transformers_version,
    with_image,
)

import l2v_hub
from l2v_hub import IncompatiblePackError, L2VHubError, Pack, PackError
from l2v_hub.errors import ArgumentError, PackNotFoundError
from l2v_hub.loader.patch import MAX_STRENGTH

# Blocks 0 and 2: Mllama's block 1 is a cross-attention block, which text-only inputs skip.
STEERED = (0, 2)
PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17, 18]]
ATOL = 1e-4


def logits(model: torch.nn.Module, ids: list[int] | None = None) -> torch.Tensor:
    """The logits of a prompt (with an image where the family's forward needs one)."""
    model_type = model.config.model_type
    tokens = torch.tensor([with_image(model_type, ids or PROMPTS[0])])
    with torch.no_grad():
        return model(input_ids=tokens, **image_inputs(model_type, tokens),
                     **forward_options(model_type)).logits


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def tiny_pack(**kwargs: object) -> Pack:
    return random_pack(HIDDEN, LAYERS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("model_type", model_type_params())
def test_steering_changes_logits_and_remove_restores_them_bit_for_bit(model_type: str) -> None:
    model = build(model_type)
    before, hooks = logits(model), hook_count(model)
    handle = l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5)
    steered = logits(model)
    assert not torch.allclose(steered, before, atol=1e-3)
    handle.remove()
    assert torch.equal(logits(model), before)
    assert hook_count(model) == hooks and "generate" not in vars(model)


# PaliGemma in transformers<4.52 attends bidirectionally over every multi-token forward, so even
# unpatched its logits differ with and without the cache: nothing to compare the patch against.
PALIGEMMA_CACHE_SKIP = {
    "paligemma": (
        transformers_version < Version("4.52"),
        "transformers<4.52 PaliGemma is not causal without a cache (prefix attention), even unpatched",
    )
}


@pytest.mark.parametrize("model_type", model_type_params(PALIGEMMA_CACHE_SKIP))
def test_greedy_generate_is_the_same_with_and_without_the_cache(model_type: str) -> None:
    model = build(model_type)
    ids = torch.tensor([with_image(model_type, PROMPTS[0])])
    images = image_inputs(model_type, ids)
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5):
        cached = generate(model, ids, use_cache=True, **images)
        uncached = generate(model, ids, use_cache=False, **images)
    assert torch.equal(cached.sequences, uncached.sequences)
    for step, (a, b) in enumerate(zip(cached.logits, uncached.logits, strict=True)):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=f"step {step}")


# Kosmos-2.5 (and Kosmos-2 in transformers 5.x) numbers a cached step's position from the cache
# length, pads included, so a left-padded row is positioned differently from the same prompt
# alone, even unpatched.
KOSMOS_PADDING_SKIP = {
    "kosmos-2.5": (True, f"transformers {transformers_version} Kosmos-2.5 counts the pads of a "
                   "left-padded row in its cached positions, even unpatched"),
    "kosmos-2": (transformers_version >= Version("5"), f"transformers {transformers_version} "
                 "Kosmos-2 counts the pads of a left-padded row in its cached positions, even "
                 "unpatched"),
}


@pytest.mark.parametrize("model_type", model_type_params(KOSMOS_PADDING_SKIP))
def test_left_padded_batch_gives_what_each_prompt_gives_alone(model_type: str) -> None:
    model = build(model_type)
    prompts = [with_image(model_type, p) for p in PROMPTS]
    ids, mask = left_pad(prompts)
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5):
        batch = generate(model, ids, mask, **image_inputs(model_type, ids, mask))
        alone = [generate(model, row, **image_inputs(model_type, row))
                 for row in (torch.tensor([p]) for p in prompts)]
    for row, single in enumerate(alone):
        assert torch.equal(batch.sequences[row, ids.shape[1]:], single.sequences[0, len(prompts[row]):])
        for step, (a, b) in enumerate(zip(batch.logits, single.logits, strict=True)):
            torch.testing.assert_close(a[row], b[0], atol=ATOL, rtol=0, msg=f"row {row} step {step}")


@pytest.mark.parametrize("model_type", model_type_params())
@pytest.mark.parametrize(("hidden", "layers"), [(HIDDEN + 8, LAYERS), (HIDDEN, LAYERS + 1)])
def test_incompatible_pack_raises_and_leaves_the_model_untouched(
    model_type: str, hidden: int, layers: int
) -> None:
    model = build(model_type)
    before, hooks = logits(model), hook_count(model)
    with pytest.raises(IncompatiblePackError) as err:
        l2v_hub.patch(model, random_pack(hidden, layers))
    assert f"hidden_size={hidden}" in str(err.value) and f"hidden_size={HIDDEN}" in str(err.value)
    assert f"num_layers={layers}" in str(err.value) and f"num_layers={LAYERS}" in str(err.value)
    assert torch.equal(logits(model), before) and hook_count(model) == hooks
    assert "generate" not in vars(model)


# -- the rest on one LLM and one VLM -------------------------------------------------------------


@pytest.fixture(params=["llama", "qwen2_vl"])
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return build(request.param)


def test_everything_not_given_comes_from_the_pack(model: torch.nn.Module) -> None:
    pack = tiny_pack()
    with l2v_hub.patch(model, pack) as handle:
        assert handle.layers == pack.defaults.layers and handle.strength == pack.defaults.strength
        assert (handle.op, handle.positions) == (pack.hook.op, pack.hook.positions)
        assert handle.layers_path.endswith("layers")


def test_a_pack_folder_is_loaded_and_verified(model: torch.nn.Module, tmp_path) -> None:
    pack = tiny_pack()
    pack.save_pretrained(tmp_path / "p")
    with l2v_hub.patch(model, tmp_path / "p", layers=STEERED) as handle:
        assert torch.equal(handle.pack.directions, pack.directions)
        steered = logits(model)
    with l2v_hub.patch(model, pack, layers=STEERED):
        assert torch.equal(logits(model), steered)


def test_hub_references_and_the_model_id_resolve_through_the_hub(
    model: torch.nn.Module, hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from l2v_hub.hub import publish

    first, second = tiny_pack(), tiny_pack()
    second.directions = -second.directions
    publish(first, "org/steer", version="1.0.0")
    publish(second.with_version("1.1.0"), "org/steer")
    with l2v_hub.patch(model, "org/steer@v1.0.0", layers=STEERED) as handle:
        assert torch.equal(handle.pack.directions, first.directions)
    with l2v_hub.patch(model, "org/steer", layers=STEERED) as handle:  # the highest version
        assert torch.equal(handle.pack.directions, second.directions)
    with pytest.raises(PackNotFoundError, match="org/the-model"):
        l2v_hub.patch(model, model_id="org/the-model")  # nothing registered or discoverable
    assert hook_count(model) == 0


def test_a_missing_folder_or_a_wrong_type_is_named(model: torch.nn.Module, tmp_path) -> None:
    with pytest.raises(PackError, match="no pack folder at"):
        l2v_hub.patch(model, tmp_path / "missing")
    with pytest.raises(PackError, match="no pack folder at"):
        l2v_hub.patch(model, "./missing-pack")
    with pytest.raises(ArgumentError, match=r"pack must be a Pack, a pack folder.*got int"):
        l2v_hub.patch(model, 3)  # type: ignore[arg-type]
    assert hook_count(model) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strength": float("nan")}, "strength must be finite"),
        ({"strength": float("inf")}, "strength must be finite"),
        ({"strength": MAX_STRENGTH + 1}, "strength must be finite and within"),
        ({"strength": True}, "strength must be a number"),
        ({"strength": "0.1"}, "strength must be a number"),
        ({"layers": [-1]}, r"outside the model's text blocks 0\.\.2"),
        ({"layers": [LAYERS]}, r"layers \[3\] are outside"),
        ({"layers": []}, "non-empty list"),
        ({"layers": [1, 1]}, "name a block twice"),
        ({"layers": [1.0]}, "integer block indices"),
        ({"layers": "1"}, "a block index or a list"),
        ({"op": "multiply"}, "op must be one of 'norm_preserving_add', 'add'"),
        ({"positions": "last"}, "positions must be one of 'first_and_generated'"),
        ({"layers_path": "model.nowhere"}, "layers_path='model.nowhere'.*missing"),
        ({"model_id": "../etc"}, "model_id must be a Hub repo id"),
    ],
)
def test_bad_arguments_raise_a_value_error_before_the_model_is_touched(
    model: torch.nn.Module, kwargs: dict, message: str
) -> None:
    before = logits(model)
    # ArgumentError (PackError for a malformed model_id): both are ValueErrors, so plain
    # `except ValueError` code catches a bad argument.
    with pytest.raises(ValueError, match=message) as err:
        l2v_hub.patch(model, tiny_pack(), **kwargs)
    assert isinstance(err.value, ArgumentError if "model_id" not in kwargs else PackError)
    assert hook_count(model) == 0 and "generate" not in vars(model)
    assert torch.equal(logits(model), before)


def test_other_model_id_warns_and_strict_refuses(model: torch.nn.Module) -> None:
    pack = tiny_pack(target_id="org/the-model")
    with pytest.warns(UserWarning, match="built for org/the-model but the model is org/other"):
        l2v_hub.patch(model, pack, model_id="org/other").remove()
    with pytest.raises(IncompatiblePackError, match=r"org/the-model.*org/other.*strict=True"):
        l2v_hub.patch(model, pack, model_id="org/other", strict=True)
    with pytest.raises(IncompatiblePackError, match="cannot tell which model"):
        l2v_hub.patch(model, pack, strict=True)  # built from a config: no id to check
    assert hook_count(model) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        l2v_hub.patch(model, pack, model_id="ORG/The-Model", strict=True).remove()


def test_model_id_comes_from_name_or_path(model: torch.nn.Module) -> None:
    pack = tiny_pack(target_id="org/the-model")
    model.config._name_or_path = "org/the-model"
    l2v_hub.patch(model, pack, strict=True).remove()
    model.config._name_or_path = "/cache/hub/models--org--the-model/snapshots/" + "0123abcd" * 5 + "/"
    l2v_hub.patch(model, pack, strict=True).remove()
    model.config._name_or_path = "org/other"
    with pytest.raises(IncompatiblePackError, match="org/other"):
        l2v_hub.patch(model, pack, strict=True)


def test_second_patch_raises_until_the_first_is_removed(model: torch.nn.Module) -> None:
    first = l2v_hub.patch(model, tiny_pack(), layers=[0])
    with pytest.raises(L2VHubError, match="already patched"):
        l2v_hub.patch(model, tiny_pack(seed=1), layers=[2])
    first.remove()
    first.remove()  # idempotent
    assert not first.active
    l2v_hub.patch(model, tiny_pack(seed=1), layers=[2]).remove()
    assert hook_count(model) == 0


def test_unpatch_removes_patches_on_the_model_or_inside_it(model: torch.nn.Module) -> None:
    before = logits(model)
    backbone = model.get_decoder()  # patching the text backbone alone is allowed too
    l2v_hub.patch(backbone, tiny_pack(), layers=STEERED)
    with pytest.raises(L2VHubError, match="already patched"):
        l2v_hub.patch(model, tiny_pack())
    assert l2v_hub.unpatch(model) == 1
    assert l2v_hub.unpatch(model) == 0
    assert torch.equal(logits(model), before) and hook_count(model) == 0


def test_strength_and_enabled_change_without_repatching(model: torch.nn.Module) -> None:
    before = logits(model)
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5) as handle:
        half = logits(model)
        handle.strength = 0.9
        assert not torch.allclose(logits(model), half)
        handle.strength = 0.0  # lambda 0 is the identity, bit for bit
        assert torch.equal(logits(model), before)
        handle.strength = 0.5
        handle.enabled = False
        assert torch.equal(logits(model), before)
        handle.enabled = True
        assert torch.equal(logits(model), half)
        with pytest.raises(ArgumentError, match="strength must be finite"):
            handle.strength = float("nan")
        with pytest.raises(ArgumentError, match="enabled must be True or False"):
            handle.enabled = 1  # type: ignore[assignment]
        assert "enabled" in repr(handle)
    assert "removed" in repr(handle)


def test_a_failure_half_way_leaves_no_hook(model: torch.nn.Module, monkeypatch) -> None:
    blocks = l2v_hub.loader.find_blocks(model).blocks

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no hooks here")

    monkeypatch.setattr(blocks[2], "register_forward_hook", refuse)
    with pytest.raises(RuntimeError, match="no hooks here"):
        l2v_hub.patch(model, tiny_pack(), layers=[0, 2])
    assert hook_count(model) == 0 and "generate" not in vars(model)
    monkeypatch.undo()
    l2v_hub.patch(model, tiny_pack(), layers=[0, 2]).remove()  # nothing left registered


def test_works_under_inference_mode_and_with_gradients(model: torch.nn.Module) -> None:
    ids = torch.tensor([PROMPTS[0]])
    with torch.inference_mode():
        handle = l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5)
        in_inference = model(input_ids=ids).logits
    steered = model(input_ids=ids).logits
    torch.testing.assert_close(steered.detach(), in_inference, atol=0, rtol=0)
    steered.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(torch.isfinite(g).all() for g in grads.values())
    handle.remove()
    model.zero_grad()
    model(input_ids=ids).logits.square().mean().backward()
    assert any(not torch.allclose(p.grad, grads[n]) for n, p in model.named_parameters()
               if n in grads)


def test_an_offloaded_model_is_steered_on_its_execution_device(model: torch.nn.Module) -> None:
    """accelerate's cpu_offload leaves the weights on 'meta' until each forward; the vectors must
    go to the execution device instead (as with a device_map spread over devices)."""
    import accelerate
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5):
        reference = logits(model)
    accelerate.cpu_offload(model, execution_device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "meta"
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5) as handle:
        assert {s.vector.device.type for s in steerers(model)} == {"cpu"}
        torch.testing.assert_close(logits(model), reference, atol=1e-5, rtol=0)
    assert not handle.active


def steerers(model: torch.nn.Module) -> list:
    from l2v_hub.loader.steer import BlockSteerer

    return [h for m in model.modules() for h in m._forward_hooks.values()
            if isinstance(h, BlockSteerer)]


def write_v1_pack(pack: Pack, folder) -> None:
    """A pack folder as l2v-hub 0.x wrote it: schema_version 1 and no scale (a relative push)."""
    import json

    pack.save_pretrained(folder)
    meta = json.loads((folder / "pack.json").read_text())
    meta["schema_version"] = 1
    del meta["scale"]
    (folder / "pack.json").write_text(json.dumps(meta))


def test_a_v1_pack_loads_but_is_refused_with_the_way_to_convert_it(model: torch.nn.Module,
                                                                  tmp_path) -> None:
    write_v1_pack(tiny_pack(), tmp_path / "v1")
    loaded = Pack.from_pretrained(tmp_path / "v1")
    assert loaded.schema_version == 1 and loaded.scale is None
    before = logits(model)
    # Never applied with v2 meaning: the folder and the loaded Pack are both refused.
    for pack in (tmp_path / "v1", loaded):
        with pytest.raises(PackError, match=r"format v1.*l2v-hub calibrate PACK --model TARGET"):
            l2v_hub.patch(model, pack, layers=STEERED, strength=0.5)
        assert hook_count(model) == 0 and "generate" not in vars(model)
        assert torch.equal(logits(model), before)


def test_the_push_is_strength_times_the_stored_s_i(model: torch.nn.Module) -> None:
    # Doubling every s_i is doubling the strength: lambda is in units of s_i.
    with l2v_hub.patch(model, tiny_pack(scale=2.0), layers=STEERED, strength=0.25) as handle:
        assert handle.scale_origin == "pack" and handle.scales.tolist() == [2.0] * LAYERS
        doubled = logits(model)
    with l2v_hub.patch(model, tiny_pack(scale=1.0), layers=STEERED, strength=0.5):
        torch.testing.assert_close(logits(model), doubled, atol=1e-6, rtol=0)


def test_a_model_from_a_local_folder_warns_naming_the_pack_target(tmp_path) -> None:
    import transformers

    build("llama").save_pretrained(tmp_path / "local")
    model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "local")
    with pytest.warns(UserWarning, match=r"no Hub id in name_or_path.*is for org/the-model"):
        l2v_hub.patch(model, tiny_pack(target_id="org/the-model")).remove()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        l2v_hub.patch(model, tiny_pack(target_id="org/the-model"), model_id="org/the-model").remove()


@pytest.mark.parametrize("op", ["norm_preserving_add", "add"])
def test_strength_zero_and_disabled_are_the_identity_bit_for_bit(model: torch.nn.Module,
                                                                  op: str) -> None:
    # The float32 round trip of norm_preserving_add with a zero push moved logits by ~1e-7.
    before = logits(model)
    with l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.0, op=op,
                       positions="all") as handle:
        assert torch.equal(logits(model), before)
        handle.strength = 0.5
        assert not torch.equal(logits(model), before)
        handle.enabled = False
        assert torch.equal(logits(model), before)


def test_a_push_beyond_float32_is_refused_naming_the_field(model: torch.nn.Module) -> None:
    """s_i = 3e38 (below float32's largest, 3.4e38) at strength 10 gave NaN logits while the
    float64 formula is finite: the push p = lambda * s_i * v_i is formed in float32."""
    before = logits(model)
    pack = tiny_pack(scale=3e38)
    with pytest.raises(ArgumentError, match=r"strength 10.0 .*scale\.values\[\d\].*at most"):
        l2v_hub.patch(model, pack, layers=STEERED, strength=10.0, positions="all")
    assert hook_count(model) == 0 and torch.equal(logits(model), before)
    with l2v_hub.patch(model, pack, layers=STEERED, strength=1.0, positions="all") as handle:
        assert torch.isfinite(logits(model)).all()
        with pytest.raises(ArgumentError, match=r"strength -10\.0") as refused:
            handle.strength = -10.0
        limit = float(str(refused.value).rsplit(" ", 1)[-1])
        assert handle.strength == 1.0 and 1.0 < limit < 10.0
        handle.strength = -limit  # the largest allowed push is still finite, and steers
        assert torch.isfinite(logits(model)).all()
    with pytest.raises(PackError, match=r"scale\.values\[0\].*float32"):
        tiny_pack(scale=1e39).validate()


def test_a_dtype_round_trip_steers_like_a_fresh_patch_of_the_same_weights(
        model: torch.nn.Module) -> None:
    """``model.to(bfloat16).to(float32)`` rounds the weights; a patch kept through it steers
    exactly like a fresh patch of a copy with those weights: the push is held in float32 from
    the pack, not in the model's dtype (a measured s_i: tests/test_loader_scale.py)."""
    import copy

    options = dict(layers=STEERED, strength=0.5, positions="all")
    with l2v_hub.patch(model, tiny_pack(), **options):
        model.to(torch.bfloat16)
        assert logits(model).dtype == torch.bfloat16
        model.to(torch.float32)
        kept = logits(model)
    twin = copy.deepcopy(model)
    with l2v_hub.patch(twin, tiny_pack(), **options):
        assert torch.equal(kept, logits(twin))


@pytest.mark.parametrize("model_type", [p for p in model_type_params()
                                        if p.values[0] in ("llama", "llava")])
def test_output_hidden_states_reports_the_steered_block_output(model_type: str) -> None:
    """hidden_states[i + 1] is what block i + 1 receives: the steered output of block i
    (transformers 5.x records it with its own forward hooks on the blocks)."""
    model = build(model_type)
    blocks = l2v_hub.loader.find_blocks(model).blocks
    tokens = torch.tensor([PROMPTS[0]])

    def states() -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            return model(input_ids=tokens, output_hidden_states=True).hidden_states

    plain = states()  # transformers' recording hooks are registered by now (5.x)
    received: list[torch.Tensor] = []
    blocks[1].register_forward_pre_hook(lambda m, args, kwargs: received.append(
        (args[0] if args else kwargs["hidden_states"]).clone()), with_kwargs=True)
    with l2v_hub.patch(model, tiny_pack(), layers=[0], strength=0.5, positions="all"):
        steered = states()
    assert torch.equal(steered[0], plain[0]) and not torch.equal(steered[1], plain[1])
    assert torch.equal(steered[1], received[-1])


@pytest.mark.skipif(not hasattr(transformers.GenerationMixin, "init_continuous_batching"),
                    reason=f"transformers {transformers_version} has no continuous batching")
def test_continuous_batching_is_refused_in_the_caller_s_thread(model: torch.nn.Module) -> None:
    """generate_batch ran the tracker in transformers' worker thread, which logged its error and
    returned no tokens for every request: it is refused before any work, at every entry point
    (all of them get their manager from init_continuous_batching), on copies too."""
    import copy

    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=2, do_sample=False, eos_token_id=-1, pad_token_id=0)
    handle = l2v_hub.patch(model, tiny_pack(), layers=STEERED, strength=0.5)
    refused = r"patched \w+ cannot run transformers' continuous batching.*model\.generate"
    with pytest.raises(ArgumentError, match=refused):
        model.generate_batch([[5, 6, 7], [8, 9]], generation_config=config)
    with pytest.raises(ArgumentError, match=refused):
        model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=2, cache_implementation="paged")
    with pytest.raises(ArgumentError, match=refused), model.continuous_batching_context_manager():
        pass
    assert getattr(model, "_cached_continuous_batching_manager", None) is None
    clone = copy.deepcopy(model)
    with pytest.raises(ArgumentError, match=refused):
        clone.init_continuous_batching(generation_config=config)
    handle.remove()
    assert l2v_hub.unpatch(clone) == 1
    for unpatched in (model, clone):
        assert "init_continuous_batching" not in vars(unpatched) and hook_count(unpatched) == 0
