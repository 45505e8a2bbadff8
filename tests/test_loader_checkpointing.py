"""Gradient checkpointing: a block recomputed inside backward steers exactly the tokens, at the
strength, of the forward it recomputes, however many forwards ran since (issue 12, fault 5:
transformers 4.51 checkpoints each block's ``__call__``, hooks included). The reference is the
same forwards without checkpointing, where nothing is recomputed."""

from __future__ import annotations

import pytest
import torch
from conftest import random_pack
from tiny_llm import tiny_llama

import l2v_hub
from l2v_hub.metadata import POSITIONS

A = torch.tensor([[5, 6, 7, 8, 9, 10]])
B_SHORT = torch.tensor([[11, 12, 13]])
# Same shape as A, but left padding moves every position: a different mask for every policy.
B_PADDED = torch.tensor([[0, 0, 11, 12, 13, 14]])


def gradients(checkpointing: bool, second: torch.Tensor, positions: str,
              strength_after_first: float | None = None) -> torch.Tensor:
    model = tiny_llama(hidden=32, layers=3, seed=0)
    model.name_or_path = "tiny/vlm"
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable()
    mask = (second != 0).long()
    with l2v_hub.patch(model, random_pack(32, 3), strength=2.0, layers=[0, 1],
                       positions=positions) as handle:
        first = model(input_ids=A, use_cache=False).logits.square().mean()
        if strength_after_first is not None:
            handle.strength = strength_after_first
        other = model(input_ids=second, attention_mask=mask, use_cache=False).logits
        (first + (other * mask[..., None]).square().mean()).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("second", [B_SHORT, B_PADDED], ids=["other-shape", "same-shape-padded"])
def test_two_forwards_then_one_backward_give_the_unchecked_gradients(
    second: torch.Tensor, positions: str
) -> None:
    want = gradients(False, second, positions)
    got = gradients(True, second, positions)
    assert float(want.abs().max()) > 1e-3  # steering reaches the gradients at all
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_a_strength_changed_before_backward_does_not_change_the_recomputed_forward() -> None:
    want = gradients(False, B_SHORT, "all", strength_after_first=0.5)
    got = gradients(True, B_SHORT, "all", strength_after_first=0.5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
