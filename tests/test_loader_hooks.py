"""Copies of a patched model (copy.deepcopy, pickle, torch.save): by the documented rule, an
independent patched model that steers as the original did at copy time, with its own state, whose
steering l2v_hub.unpatch removes without a trace."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from conftest import random_pack
from tiny_models import HIDDEN, LAYERS, build, generate

import l2v_hub
from l2v_hub import L2VHubError
from l2v_hub.loader.hooks import SteeredGenerate

PROMPT = torch.tensor([[5, 6, 7, 8, 9, 10]])


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROMPT).logits


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def via_pickle(model: torch.nn.Module) -> torch.nn.Module:
    return pickle.loads(pickle.dumps(model))


def via_torch_save(model: torch.nn.Module) -> torch.nn.Module:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


COPIES = {"deepcopy": copy.deepcopy, "pickle": via_pickle, "torch.save": via_torch_save}


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("model_type", ["llama", "qwen2_vl"])
def test_a_copy_of_a_patched_model_is_an_independent_patched_model(model_type: str, how: str) -> None:
    model = build(model_type)
    plain, hooks = logits(model), hook_count(model)
    handle = l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[0, 2], strength=0.5)
    steered, steered_run = logits(model), generate(model, PROMPT, new_tokens=4)
    clone = COPIES[how](model)
    # It steers as the original did, and its generate drives the copy, not the original.
    assert torch.equal(logits(clone), steered)
    assert isinstance(vars(clone)["generate"], SteeredGenerate)
    assert vars(clone)["generate"].generate.__self__ is clone
    clone_run = generate(clone, PROMPT, new_tokens=4)
    assert torch.equal(clone_run.sequences, steered_run.sequences)
    for a, b in zip(clone_run.logits, steered_run.logits, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # Its own state: the original's handle changes and removes the original only.
    handle.strength = 0.9
    assert torch.equal(logits(clone), steered)
    handle.remove()
    assert torch.equal(logits(model), plain) and torch.equal(logits(clone), steered)
    # No handle: patching it again is refused until unpatch takes the copied steering off.
    with pytest.raises(L2VHubError, match="copy of a patched model"):
        l2v_hub.patch(clone, random_pack(HIDDEN, LAYERS))
    assert l2v_hub.unpatch(clone) == 1 and l2v_hub.unpatch(clone) == 0
    assert torch.equal(logits(clone), plain)
    assert hook_count(clone) == hooks and "generate" not in vars(clone)
    l2v_hub.patch(clone, random_pack(HIDDEN, LAYERS)).remove()


def test_a_copy_made_mid_generation_does_not_inherit_the_forward_in_progress() -> None:
    model = build("llama")
    with l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[0, 2], strength=0.5):
        logits(model)  # the tracker now holds this forward's [batch, tokens]
        clone = copy.deepcopy(model)
    with pytest.raises(L2VHubError, match="call the patched model itself"):
        clone.model(input_ids=PROMPT)  # a fresh tracker: no forward of the copy seen yet
    assert l2v_hub.unpatch(clone) == 1


def test_an_unpatched_model_copies_clean_after_remove() -> None:
    model = build("llama")
    l2v_hub.patch(model, random_pack(HIDDEN, LAYERS)).remove()
    clone = copy.deepcopy(model)
    assert hook_count(clone) == 0 and l2v_hub.unpatch(clone) == 0
