"""torch.compile and a patched model, in both orders, for the forward, torch.compile(model) and
model.compile(): steered exactly as eager, strength changes and removal included; never silently
unsteered. The compiler front end (dynamo) is what
decides this, so the tests compile with backend="eager" to stay fast on a CPU."""

from __future__ import annotations

import pytest
import torch
from conftest import random_pack
from tiny_models import HIDDEN, LAYERS, build

import l2v_hub

PROMPT = torch.tensor([[5, 6, 7, 8, 9, 10]])


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROMPT).logits


def compiled(fn):
    return torch.compile(fn, backend="eager")


def steer(model: torch.nn.Module, strength: float = 0.5) -> l2v_hub.Patch:
    return l2v_hub.patch(model, random_pack(HIDDEN, LAYERS), layers=[0, 2], strength=strength)


@pytest.fixture
def eager() -> dict[str, torch.Tensor]:
    """The reference: unpatched and steered logits of the eager model."""
    torch.compiler.reset()
    model = build("llama")
    plain = logits(model)
    with steer(model):
        steered = logits(model)
    with steer(model, strength=0.9):
        stronger = logits(model)
    return {"plain": plain, "steered": steered, "stronger": stronger}


def test_patch_then_compile_the_forward_steers_exactly_and_removes(eager) -> None:
    model = build("llama")
    handle = steer(model)
    model.forward = compiled(model.forward)
    torch.testing.assert_close(logits(model), eager["steered"], atol=1e-5, rtol=0)
    handle.strength = 0.9
    torch.testing.assert_close(logits(model), eager["stronger"], atol=1e-5, rtol=0)
    handle.remove()
    torch.testing.assert_close(logits(model), eager["plain"], atol=1e-5, rtol=0)


def test_compile_the_forward_run_it_then_patch_steers_exactly(eager) -> None:
    model = build("llama")
    model.forward = compiled(model.forward)
    torch.testing.assert_close(logits(model), eager["plain"], atol=1e-5, rtol=0)
    handle = steer(model)  # compiled code does not see new hooks: patch makes it retrace
    torch.testing.assert_close(logits(model), eager["steered"], atol=1e-5, rtol=0)
    handle.remove()
    torch.testing.assert_close(logits(model), eager["plain"], atol=1e-5, rtol=0)
    with steer(model, strength=0.9):  # again, after a removal
        torch.testing.assert_close(logits(model), eager["stronger"], atol=1e-5, rtol=0)


def whole(model: torch.nn.Module, how: str) -> torch.nn.Module:
    """``model`` compiled as a whole: what the user then calls."""
    if how == "model.compile()":
        model.compile(backend="eager")
        return model
    return compiled(model)


WHOLE = ["torch.compile(model)", "model.compile()"]


@pytest.mark.parametrize("how", WHOLE)
def test_patch_then_compile_the_whole_model_steers_exactly(how: str, eager) -> None:
    # The tracker's pre-hook runs eagerly (torch.compiler.disable); the blocks are compiled.
    model = build("llama")
    handle = steer(model)
    run = whole(model, how)
    torch.testing.assert_close(logits(run), eager["steered"], atol=1e-5, rtol=0)
    handle.strength = 0.9
    torch.testing.assert_close(logits(run), eager["stronger"], atol=1e-5, rtol=0)
    handle.remove()
    torch.testing.assert_close(logits(run), eager["plain"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("how", WHOLE)
def test_compile_the_whole_model_run_it_then_patch_steers_exactly(how: str, eager) -> None:
    model = build("llama")
    run = whole(model, how)
    torch.testing.assert_close(logits(run), eager["plain"], atol=1e-5, rtol=0)
    # Patching the wrapper patches the model it compiles; compiled code retraces with the hooks.
    with l2v_hub.patch(run, random_pack(HIDDEN, LAYERS), layers=[0, 2], strength=0.5) as handle:
        assert l2v_hub.loader.find_blocks(model).blocks[0]._forward_hooks
        torch.testing.assert_close(logits(run), eager["steered"], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits(model), eager["steered"], atol=1e-5, rtol=0)
    assert not handle.active
    torch.testing.assert_close(logits(run), eager["plain"], atol=1e-5, rtol=0)


def test_generate_through_a_compiled_forward_matches_eager_generate(eager) -> None:
    from tiny_models import generate

    model = build("llama")
    with steer(model):
        reference = generate(model, PROMPT, new_tokens=4)
        model.forward = compiled(model.forward)
        run = generate(model, PROMPT, new_tokens=4)
    assert torch.equal(run.sequences, reference.sequences)
    for a, b in zip(run.logits, reference.logits, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
