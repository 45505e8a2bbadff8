"""s_i of an uncalibrated v2 pack, measured by the loader at patch time (l2v_hub/loader/scale.py):
the measure is what docs/method.md defines, recomputed here from block outputs captured
independently; a calibrated pack's stored s_i are used as they are; without a tokenizer the pack
is refused before the model is touched."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import random_pack
from tiny_llm import byte_tokenizer, tiny_llama

import l2v_hub
from l2v_hub import IncompatiblePackError
from l2v_hub.loader import find_blocks
from l2v_hub.loader.scale import measure_scales, neutral_text, token_measures
from l2v_hub.loader.steer import BlockSteerer
from l2v_hub.metadata import Scale

HIDDEN, LAYERS = 32, 4


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def captured_outputs(model: torch.nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    """Every decoder block's output for ``ids`` ([1, T]), captured by hooks of this test."""
    outputs: list[torch.Tensor] = []
    handles = [b.register_forward_hook(lambda m, a, out: outputs.append(
        (out[0] if isinstance(out, tuple) else out)[0].detach().double()))
        for b in model.model.layers]
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for h in handles:
        h.remove()
    return outputs


def spread(states: torch.Tensor) -> float:
    """token_spread by its definition: the median distance of the ordinary tokens (all but the
    first, the attention sink) from their mean; torch's median, the lower of two middle values."""
    ordinary = states[1:]
    distances = sorted((ordinary - ordinary.mean(0)).norm(dim=-1).tolist())
    return distances[(len(distances) - 1) // 2]


def test_an_uncalibrated_pack_gets_s_i_measured_on_the_model() -> None:
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    pack = random_pack(HIDDEN, LAYERS, scale=None)
    text, _ = neutral_text()
    outputs = captured_outputs(model, torch.tensor([tok(text)["input_ids"]]))
    expected = torch.tensor([spread(o) for o in outputs], dtype=torch.float64)
    with l2v_hub.patch(model, pack, tokenizer=tok) as handle:
        assert handle.scale_origin == "measured"
        assert handle.scales.dtype == torch.float32 and handle.scales.shape == (LAYERS,)
        torch.testing.assert_close(handle.scales.double(), expected, rtol=1e-5, atol=0)
        # token_measures names the same numbers, and its token_norm leaves the first token out too.
        for o, want in zip(outputs, expected, strict=True):
            measures = token_measures(o)
            assert measures["token_spread"] == pytest.approx(float(want), rel=1e-9)
            norms = sorted(o[1:].norm(dim=-1).tolist())
            assert measures["token_norm"] == pytest.approx(norms[(len(norms) - 1) // 2], rel=1e-9)
        # The hook holds s_i * v_i in float32: the push is lambda times that.
        (steerer,) = [h for b in find_blocks(model).blocks for h in b._forward_hooks.values()
                      if isinstance(h, BlockSteerer)]
        i = pack.defaults.layers[0]
        assert steerer.vector.dtype == torch.float32
        torch.testing.assert_close(steerer.vector, pack.directions[i] * handle.scales[i])
    torch.testing.assert_close(measure_scales(model, "token_spread", tok), handle.scales)


def test_a_calibrated_pack_uses_its_stored_s_i() -> None:
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    values = (0.5, 1.5, 2.5, 3.5)
    pack = replace(random_pack(HIDDEN, LAYERS), scale=Scale("cot_norm", values))
    calls = []
    model.register_forward_pre_hook(lambda m, a: calls.append(1))
    with l2v_hub.patch(model, pack, tokenizer=tok) as handle:
        assert handle.scale_origin == "pack" and not calls  # nothing measured: no forward
        assert handle.scales.tolist() == list(values)


def test_s_i_is_measured_once_per_model() -> None:
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    pack = random_pack(HIDDEN, LAYERS, scale=None)
    calls = []
    model.register_forward_pre_hook(lambda m, a, k: calls.append(1), with_kwargs=True)
    l2v_hub.patch(model, pack, tokenizer=tok).remove()
    assert len(calls) == 1
    l2v_hub.patch(model, pack, tokenizer=tok).remove()
    assert len(calls) == 1


@pytest.mark.parametrize("change", ["dtype round trip", "in-place edit"])
def test_s_i_is_measured_again_once_the_weights_change(change: str) -> None:
    """A measurement kept from before ``model.to(bfloat16).to(float32)`` (or an optimizer step)
    is of other weights: a later patch measures the model as it is, like a fresh copy of it."""
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    pack = random_pack(HIDDEN, LAYERS, scale=None)
    before = measure_scales(model, tokenizer=tok)
    if change == "dtype round trip":
        model.to(torch.bfloat16).to(torch.float32)
    else:
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight.mul_(3.0)
    twin = copy.deepcopy(model)  # a fresh object (nothing measured on it): buffers rounded too
    ids = torch.tensor([[7, 8, 9, 10]])
    with l2v_hub.patch(model, pack, tokenizer=tok, positions="all") as a, torch.no_grad():
        got = model(input_ids=ids).logits
        with l2v_hub.patch(twin, pack, tokenizer=tok, positions="all") as b:
            assert not torch.equal(a.scales, before) and torch.equal(a.scales, b.scales)
            assert torch.equal(got, twin(input_ids=ids).logits)


def test_a_measured_s_i_beyond_float32_is_refused() -> None:
    # Every entry of the last block's states +-3e38 (finite): their spread is beyond float32.
    model, tok = tiny_llama(hidden=HIDDEN, layers=LAYERS), byte_tokenizer()
    find_blocks(model).blocks[3].register_forward_hook(
        lambda m, a, out: torch.randn_like(out).sign() * 3e38)
    with pytest.raises(IncompatiblePackError, match=r"token_spread measured at blocks \[3\]"):
        l2v_hub.patch(model, random_pack(HIDDEN, LAYERS, scale=None), tokenizer=tok)
    assert not any(isinstance(h, BlockSteerer) for b in find_blocks(model).blocks
                   for h in b._forward_hooks.values())


def test_the_tokenizer_is_loaded_from_name_or_path_when_not_given(tmp_path: Path, hf_offline) -> None:
    tok = byte_tokenizer()
    tok.save_pretrained(tmp_path / "model")
    given, loaded = (tiny_llama(hidden=HIDDEN, layers=LAYERS) for _ in range(2))
    loaded.config._name_or_path = str(tmp_path / "model")
    pack = random_pack(HIDDEN, LAYERS, scale=None)
    with l2v_hub.patch(given, pack, tokenizer=tok) as a, l2v_hub.patch(loaded, pack) as b:
        assert b.scale_origin == "measured"
        assert torch.equal(a.scales, b.scales)


@pytest.mark.parametrize("name", ["", "org/not-cached"])
def test_no_tokenizer_refuses_the_pack_and_leaves_the_model_untouched(name: str, hf_offline) -> None:
    model = tiny_llama(hidden=HIDDEN, layers=LAYERS)
    model.config._name_or_path = name
    ids = torch.tensor([[7, 8, 9, 10]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    target = name or "tiny/vlm"  # the pack is for this model: no other warning in the way
    with pytest.raises(IncompatiblePackError, match=r"(?s)not calibrated.*Pass tokenizer="):
        l2v_hub.patch(model, random_pack(HIDDEN, LAYERS, scale=None, target_id=target))
    assert hook_count(model) == 0 and "generate" not in vars(model)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)
    # Nothing half-done either: the model can be patched right after.
    l2v_hub.patch(model, random_pack(HIDDEN, LAYERS, target_id=target)).remove()


def test_a_cot_norm_scale_cannot_be_measured_at_patch_time() -> None:
    # cot_norm needs contrastive pairs run through the target: calibration, not the loader.
    model = tiny_llama(hidden=HIDDEN, layers=LAYERS)
    pack = replace(random_pack(HIDDEN, LAYERS), scale=Scale("cot_norm", None))
    with pytest.raises(IncompatiblePackError, match="l2v-hub calibrate"):
        l2v_hub.patch(model, pack, tokenizer=byte_tokenizer())
    assert hook_count(model) == 0


def test_the_no_tokenizer_error_quotes_the_cause_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 20: the cause was cut at 120 characters, mid-URL ("...listed on
    # 'https://huggingface.co/mo)").
    import transformers

    cause = ("org/missing is not a local folder and is not a valid model identifier listed on "
             "'https://huggingface.co/models'. If this is a private repository, pass a token.")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(cause)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)
    model = tiny_llama(hidden=HIDDEN, layers=LAYERS)
    model.name_or_path = "org/missing"
    with pytest.raises(IncompatiblePackError) as caught:
        l2v_hub.patch(model, random_pack(HIDDEN, LAYERS, scale=None), model_id="tiny/vlm")
    assert cause in str(caught.value) and "Pass tokenizer= to l2v_hub.patch" in str(caught.value)
