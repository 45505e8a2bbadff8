"""The steering operations, checked against the normative formulas of docs/loader.md computed
independently in float64, and the hook's handling of both block output types."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2v_hub.loader.positions import PositionTracker, select
from l2v_hub.loader.steer import BlockSteerer, Controls, add, norm_preserving_add


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    v = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=-1, keepdim=True)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16), strength=st.floats(-3, 3), scale=st.floats(1e-3, 1e3))
def test_norm_preserving_add_follows_the_formula_and_keeps_each_norm(
    seed: int, strength: float, scale: float
) -> None:
    h = scale * torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(seed))
    v = unit(16, seed=seed + 1)
    got = norm_preserving_add(h, v, strength)
    h64, v64 = h.double(), v.double()
    n = h64.norm(dim=-1, keepdim=True)
    u = h64 / n + strength * v64
    want = n * u / u.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6 * scale)
    torch.testing.assert_close(got.norm(dim=-1), h.norm(dim=-1), rtol=1e-5, atol=0)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**16), strength=st.floats(-3, 3))
def test_add_follows_the_formula(seed: int, strength: float) -> None:
    h = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(seed))
    v = unit(16, seed=seed + 1)
    want = h.double() + strength * h.double().norm(dim=-1, keepdim=True) * v.double()
    torch.testing.assert_close(add(h, v, strength).double(), want, rtol=1e-5, atol=1e-6)


def test_steering_turns_the_state_toward_the_direction() -> None:
    h, v = torch.randn(4, 3, 32), unit(32)
    cos = lambda x: torch.nn.functional.cosine_similarity(x, v.expand_as(x), dim=-1)  # noqa: E731
    for op in (norm_preserving_add, add):
        assert (cos(op(h, v, 0.5)) > cos(h)).all()
        assert (cos(op(h, v, -0.5)) < cos(h)).all()
    torch.testing.assert_close(norm_preserving_add(h, v, 0.0), h)
    torch.testing.assert_close(add(h, v, 0.0), h)


def test_a_zero_state_gives_no_nan_forward_or_backward() -> None:
    h = torch.zeros(1, 2, 8, requires_grad=True)
    for op in (norm_preserving_add, add):
        out = op(h, unit(8), 0.5)
        assert torch.isfinite(out).all()
        (grad,) = torch.autograd.grad(out.sum(), h)
        assert torch.isfinite(grad).all()


def test_half_precision_keeps_the_dtype_and_is_close_to_float32() -> None:
    h, v = torch.randn(2, 3, 64), unit(64)
    for dtype in (torch.bfloat16, torch.float16):
        got = norm_preserving_add(h.to(dtype), v.to(dtype), 0.4)
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), norm_preserving_add(h, v, 0.4), rtol=2e-2, atol=2e-2)


def test_select_names_the_policy_positions() -> None:
    pos = torch.arange(6)[None].expand(2, -1)
    prompt = torch.tensor([[3], [5]])
    rows = lambda m: m.int().tolist()  # noqa: E731
    assert rows(select("all", pos, prompt)) == [[1] * 6] * 2
    assert rows(select("generated", pos, prompt)) == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1]]
    assert rows(select("first_and_generated", pos, prompt)) == [[1, 0, 0, 1, 1, 1],
                                                                [1, 0, 0, 0, 0, 1]]
    assert rows(select("prompt_last", pos, prompt)) == [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]]


def tracker_after(policy: str, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor | None) -> PositionTracker:
    """A real position tracker that has seen one forward of a model taking these inputs."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> None:
        return None

    tracker = PositionTracker(policy, forward)
    tracker.before_forward(torch.nn.Identity(), (input_ids,), {"attention_mask": attention_mask})
    return tracker


@pytest.mark.parametrize("as_tuple", [False, True], ids=["tensor (5.x)", "tuple (4.51)"])
def test_the_hook_steers_only_the_tracked_tokens_in_either_output_type(as_tuple: bool) -> None:
    h, v = torch.randn(2, 3, 8), unit(8)
    # Row 0 is left-padded: its first real token is column 1.
    tracker = tracker_after("first_and_generated", torch.ones(2, 3, dtype=torch.long),
                            torch.tensor([[0, 1, 1], [1, 1, 1]]))
    controls = Controls(strength=0.7)
    hook = BlockSteerer("norm_preserving_add", v, controls, tracker)
    extra = torch.ones(1)
    out = hook(torch.nn.Identity(), (), (h, extra) if as_tuple else h)
    steered = out[0] if as_tuple else out
    if as_tuple:
        assert out[1] is extra and len(out) == 2
    changed = (steered != h).any(-1)
    assert changed.tolist() == [[False, True, False], [True, False, False]]
    torch.testing.assert_close(steered[changed], norm_preserving_add(h, v, 0.7)[changed])
    controls.enabled = False
    assert hook(torch.nn.Identity(), (), h) is None


def test_without_a_mask_a_forward_with_nothing_to_steer_returns_early() -> None:
    # No attention_mask: the tracker decides from integers alone that no prompt token is steered.
    tracker = tracker_after("generated", torch.ones(1, 4, dtype=torch.long), None)
    hook = BlockSteerer("add", unit(8), Controls(strength=0.7), tracker)
    assert hook(torch.nn.Identity(), (), torch.randn(1, 4, 8)) is None
