"""The v2 steering operations, checked against the normative formulas of docs/loader.md computed
independently in float64 (the push p = lambda * s_i * v_i is fixed, not relative to the token),
their float32 computation for half-precision states, and the hook's handling of both block output
types."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2v_hub.loader.positions import PositionTracker, _count, select
from l2v_hub.loader.steer import OPERATIONS, BlockSteerer, Controls, add, norm_preserving_add
from l2v_hub.metadata import POSITIONS

HALF = (torch.float16, torch.bfloat16)


def unit(*shape: int, seed: int = 0) -> torch.Tensor:
    v = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=-1, keepdim=True)


def states(seed: int, scale: float, hidden: int = 16) -> torch.Tensor:
    return scale * torch.randn(2, 5, hidden, generator=torch.Generator().manual_seed(seed))


def reference_npa(h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """c = h + p, h' = c * ||h|| / ||c||, in float64."""
    h64, p64 = h.double(), p.double()
    c = h64 + p64
    return c * h64.norm(dim=-1, keepdim=True) / c.norm(dim=-1, keepdim=True)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), strength=st.floats(-3, 3), s=st.floats(1e-3, 1e3),
       scale=st.floats(1e-3, 1e3))
def test_norm_preserving_add_follows_the_v2_formula_and_keeps_each_norm(
    seed: int, strength: float, s: float, scale: float
) -> None:
    h, v = states(seed, scale), unit(16, seed=seed + 1)
    p = strength * s * v
    got = norm_preserving_add(h, p)
    assert got.dtype == torch.float32
    # Both ends of each relative error are float32 rounding of ||c|| ~ max(||h||, ||p||).
    torch.testing.assert_close(got.double(), reference_npa(h, p), rtol=1e-5, atol=1e-6 * scale)
    torch.testing.assert_close(got.norm(dim=-1), h.norm(dim=-1), rtol=1e-5, atol=0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), strength=st.floats(-3, 3), s=st.floats(1e-3, 1e3),
       scale=st.floats(1e-3, 1e3))
def test_add_adds_the_same_push_to_every_token_whatever_its_norm(
    seed: int, strength: float, s: float, scale: float
) -> None:
    h, v = states(seed, scale), unit(16, seed=seed + 1)
    p = strength * s * v
    got = add(h, p)
    want = h.double() + p.double()
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6 * (scale + abs(strength) * s))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), push=st.floats(1e-2, 10), big=st.floats(10, 1e4))
def test_the_push_does_not_scale_with_the_token_norm(seed: int, push: float, big: float) -> None:
    # v1 pushed by lambda * ||h||: a token `big` times larger turned by the same angle. In v2 the
    # turn of a larger token is smaller, bounded by asin(||p|| / ||h||).
    h, v = unit(1, 16, seed=seed), unit(16, seed=seed + 1)
    p = push * v
    small_turn = angle(h, norm_preserving_add(h, p))
    large_turn = angle(big * h, norm_preserving_add(big * h, p))
    assert float(large_turn) <= float(small_turn) + 1e-6
    if push < big:
        assert float(large_turn) <= float(torch.asin(torch.tensor(push / big, dtype=torch.float64))) + 1e-5
    torch.testing.assert_close(add(big * h, p) - big * h, p.expand(1, 16), rtol=0, atol=1e-5 * big)


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle between a and b in radians (float64, stable for small angles)."""
    a = a.double() / a.double().norm(dim=-1, keepdim=True)
    b = b.double() / b.double().norm(dim=-1, keepdim=True)
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


def test_steering_turns_the_state_toward_the_push_and_zero_is_the_identity() -> None:
    h, v = torch.randn(4, 3, 32), unit(32)
    cos = lambda x: torch.nn.functional.cosine_similarity(x, v.expand_as(x), dim=-1)  # noqa: E731
    for op in (norm_preserving_add, add):
        assert (cos(op(h, 0.5 * v)) > cos(h)).all()
        assert (cos(op(h, -0.5 * v)) < cos(h)).all()
        torch.testing.assert_close(op(h, 0.0 * v), h, rtol=0, atol=1e-6)


def test_a_zero_state_gives_no_nan_forward_or_backward() -> None:
    h = torch.zeros(1, 2, 8, requires_grad=True)
    for op in (norm_preserving_add, add):
        out = op(h, 0.5 * unit(8))
        assert torch.isfinite(out).all()
        (grad,) = torch.autograd.grad(out.sum(), h)
        assert torch.isfinite(grad).all()
    # norm_preserving_add keeps the zero norm: a zero state stays zero.
    assert torch.equal(norm_preserving_add(h, unit(8)), torch.zeros(1, 2, 8))


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("norm", [1.0, 3e2, 6e4])
@pytest.mark.parametrize("op", [norm_preserving_add, add], ids=lambda f: f.__name__)
def test_half_precision_is_computed_in_float32_and_cast_back(dtype: torch.dtype, norm: float,
                                                             op) -> None:
    # ||h||^2 of a state of norm 6e4 overflows fp16 (max 65504): the ops must not square in it.
    # Each token's largest entry stays below 65504 - ||p|| so that the true `add` is representable.
    h = unit(2, 7, 64, seed=3) * norm
    h = h.to(dtype)
    p = 0.3 * norm * unit(64, seed=4)  # a push on the token's scale: a real turn
    got = op(h, p)
    assert got.dtype == dtype
    assert torch.isfinite(got).all()
    want = reference_npa(h, p) if op is norm_preserving_add else h.double() + p.double()
    # What float32 then one rounding to `dtype` gives: within one ulp of `dtype` of the truth.
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(got.double(), want, rtol=eps, atol=eps * norm / 8)
    if op is norm_preserving_add:
        torch.testing.assert_close(got.double().norm(dim=-1), h.double().norm(dim=-1),
                                   rtol=2 * eps, atol=0)


# Issue 12's fp16 inputs, translated to v2 (the push is absolute: the v1 push lambda * ||h|| * v
# with ||h|| = 50000 and 70711 is p = [25000, 0] and [7071.07, 0]); the right values in fp16.
EXACT_FP16 = [
    ("norm_preserving_add", [30000.0, 40000.0], [25000.0, 0.0], [40448.0, 29408.0]),
    ("norm_preserving_add", [50000.0, 50000.0], [7071.0678, 0.0], [53184.0, 46592.0]),
    ("add", [30000.0, 40000.0], [25000.0, 0.0], [55008.0, 40000.0]),
    ("add", [50000.0, 50000.0], [7071.0678, 0.0], [57056.0, 49984.0]),  # 50000 is 49984 in fp16
]


@pytest.mark.parametrize(("op", "h", "p", "want"), EXACT_FP16)
def test_fp16_states_near_the_top_of_the_range_give_the_right_values(op, h, p, want) -> None:
    # The v1 code computed ||h|| in fp16: [0, 0], NaN, [inf, nan].
    state = torch.tensor([[h]], dtype=torch.float16)
    got = OPERATIONS[op](state, torch.tensor(p))
    assert got.dtype == torch.float16 and got[0, 0].tolist() == want
    truth = reference(op, state, torch.tensor(p)).to(torch.float16)  # one rounding of the truth
    assert torch.equal(got, truth)


def reference(op: str, h: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The v2 formula in float64 (no overflow below 1e154)."""
    return reference_npa(h, p) if op == "norm_preserving_add" else h.double() + p.double()


FLOATS = (torch.float16, torch.bfloat16, torch.float32)


@settings(max_examples=150, deadline=None)
@given(dtype=st.sampled_from(FLOATS), op=st.sampled_from(sorted(OPERATIONS)),
       seed=st.integers(0, 2**16), h_top=st.floats(0, 1), p_top=st.floats(0, 1),
       strength=st.floats(-10, 10))
def test_every_op_is_right_over_each_dtype_s_whole_finite_range(
    dtype: torch.dtype, op: str, seed: int, h_top: float, p_top: float, strength: float
) -> None:
    """Magnitudes log-uniform from 2^-8 up to the dtype's largest finite value, for the state
    and the push independently, against float64. Where the true result is beyond the dtype's range,
    the documented behaviour: it saturates at +-max (never inf, never NaN)."""
    info = torch.finfo(dtype)
    top = math.log2(info.max)
    h_mag, p_mag = (2.0 ** (-8 + (top + 8) * t) for t in (h_top, p_top))
    h = states(seed, 1.0, hidden=8)
    h = (h / h.abs().amax(-1, keepdim=True) * min(h_mag, info.max)).to(dtype)  # largest entry: h_mag
    p = (strength / 10 * min(p_mag, torch.finfo(torch.float32).max)) * unit(8, seed=seed + 1)
    got = OPERATIONS[op](h, p)
    assert got.dtype == dtype and torch.isfinite(got).all()
    want = reference(op, h, p).clamp(-info.max, info.max)
    # float32 arithmetic on values scaled to <= 1, then one rounding to `dtype`: a few ulps of
    # the token's largest input entry, absolute (small entries of a large token carry its error).
    scale = torch.maximum(h.double().abs().amax(-1, keepdim=True), p.double().abs().amax())
    tolerance = 4 * info.eps * scale + 4 * torch.finfo(torch.float32).eps * scale
    assert ((got.double() - want).abs() <= tolerance).all()


@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_a_result_beyond_the_dtype_range_saturates_instead_of_becoming_inf(dtype) -> None:
    top = torch.finfo(dtype).max
    # A state of norm sqrt(2) * 0.9 max turned toward its first axis: that entry would be above
    # max (the cast alone gives inf); it saturates, the other entry is the formula's.
    h = torch.tensor([[[0.9 * top, 0.9 * top]]]).to(dtype)
    p = torch.tensor([min(10 * top, torch.finfo(torch.float32).max), 0.0])
    turned = norm_preserving_add(h, p)
    truth = reference_npa(h, p)
    assert truth[0, 0, 0] > top and turned[0, 0, 0].item() == top
    torch.testing.assert_close(turned[0, 0, 1].double(), truth[0, 0, 1], rtol=torch.finfo(dtype).eps,
                               atol=0)
    assert add(h, p)[0, 0, 0].item() == top


@pytest.mark.parametrize("residual", [5.7e4, 8e4], ids=["norm 5.7e4", "norm 8e4"])
def test_a_whole_fp16_llama_near_the_top_of_its_range_is_steered_like_fp32(residual: float) -> None:
    """Issue 12: residual norms ~5.7e4 gave logits off by 0.61 (and NaN at ~8e4). The residual
    stream of a tiny Llama is its embedding plus small block outputs, so scaling the embeddings
    sets its norm; s_i on that scale makes the push a real turn."""
    from conftest import random_pack
    from tiny_models import HIDDEN, LAYERS, build

    import l2v_hub

    model = build("llama")
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.mul_(residual / emb.norm(dim=-1, keepdim=True))
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    pack = random_pack(HIDDEN, LAYERS, scale=residual / 3)

    def run(m: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            plain = m(input_ids=ids).logits.float()
            with l2v_hub.patch(m, pack, layers=[0, 1, 2], strength=1.0, op="norm_preserving_add",
                               positions="all"):
                steered = m(input_ids=ids).logits.float()
        return plain, steered

    plain32, steered32 = run(model)
    plain16, steered16 = run(model.half())
    assert torch.isfinite(steered16).all()
    assert (steered32 - plain32).abs().max() > 0.1  # the push is a real change
    # fp16 keeps 11 bits: the same error unpatched and patched.
    unpatched_error = float((plain16 - plain32).abs().max())
    torch.testing.assert_close(steered16, steered32, atol=max(0.05, 2 * unpatched_error), rtol=0)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_the_hook_returns_the_block_dtype_from_a_float32_push(dtype: torch.dtype) -> None:
    h = (6e4 * unit(1, 4, 32, seed=5)).to(dtype)
    tracker = tracker_after("all", torch.ones(1, 4, dtype=torch.long), None)
    push = unit(32, seed=6) * 2e4  # s_i * v_i as the loader holds it: float32
    out = BlockSteerer("norm_preserving_add", push, Controls(strength=0.5), tracker)(
        torch.nn.Identity(), (), h)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert torch.equal(out, norm_preserving_add(h, 0.5 * push))


def test_select_names_the_policy_positions() -> None:
    pos = torch.arange(6)[None].expand(2, -1)
    prompt = torch.tensor([[3], [5]])
    rows = lambda m: m.int().tolist()  # noqa: E731
    assert rows(select("all", pos, prompt)) == [[1] * 6] * 2
    assert rows(select("generated", pos, prompt)) == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1]]
    assert rows(select("first_and_generated", pos, prompt)) == [[1, 0, 0, 1, 1, 1],
                                                                [1, 0, 0, 0, 0, 1]]
    assert rows(select("prompt_last", pos, prompt)) == [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]]
    assert rows(select("prompt_last_and_generated", pos, prompt)) == [[0, 0, 1, 1, 1, 1],
                                                                      [0, 0, 0, 0, 1, 1]]


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
    torch.testing.assert_close(steered[changed], norm_preserving_add(h, 0.7 * v)[changed])
    controls.enabled = False
    assert hook(torch.nn.Identity(), (), h) is None


def test_without_a_mask_a_forward_with_nothing_to_steer_returns_early() -> None:
    # No attention_mask: the tracker decides from integers alone that no prompt token is steered.
    tracker = tracker_after("generated", torch.ones(1, 4, dtype=torch.long), None)
    hook = BlockSteerer("add", unit(8), Controls(strength=0.7), tracker)
    assert hook(torch.nn.Identity(), (), torch.randn(1, 4, 8)) is None


@pytest.mark.parametrize("policy", POSITIONS)
def test_the_integer_count_agrees_with_the_mask(policy: str) -> None:
    """``_count`` decides a mask-free decode step; it must count what ``select`` marks."""
    for prompt in range(0, 5):
        for start in range(0, 7):
            for stop in range(start, 8):
                pos = torch.arange(start, stop)
                want = int(select(policy, pos, prompt).sum())
                assert _count(policy, start, stop, prompt) == want, (prompt, start, stop)
