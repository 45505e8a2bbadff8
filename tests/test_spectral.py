"""The spectral core against scipy's reference and its own algebraic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample as scipy_resample

from l2v_hub import spectral


def bandlimited(n: int, bins: int, batch: tuple[int, ...] = (), seed: int = 0) -> torch.Tensor:
    """A real signal of length n whose spectrum is zero at and above bin ``bins``."""
    g = torch.Generator().manual_seed(seed)
    spec = torch.zeros(*batch, n // 2 + 1, dtype=torch.complex128)
    spec[..., :bins] = torch.complex(
        torch.randn(*batch, bins, generator=g, dtype=torch.float64),
        torch.randn(*batch, bins, generator=g, dtype=torch.float64),
    )
    return torch.fft.irfft(spec, n=n).to(torch.float32)


SIZES = [(64, 96), (96, 64), (63, 97), (97, 63), (576, 640), (640, 576), (65, 64), (64, 65), (7, 8)]


@pytest.mark.parametrize(("n", "size"), SIZES)
def test_resample_matches_scipy_on_bandlimited_input(n: int, size: int) -> None:
    v = bandlimited(n, bins=min(n, size) // 2 - 1 or 1, batch=(3,))
    ours = spectral.resample(v, size)
    ref = scipy_resample(v.double().numpy(), size, axis=-1)
    assert ours.shape == (3, size)
    assert np.abs(ours.double().numpy() - ref).max() < 1e-5


@pytest.mark.parametrize(("n", "size"), SIZES)
def test_resample_matches_scipy_on_arbitrary_input(n: int, size: int) -> None:
    # Including the Nyquist-bin folding and splitting, not only band-limited signals.
    v = torch.randn(2, n, generator=torch.Generator().manual_seed(1))
    ref = scipy_resample(v.double().numpy(), size, axis=-1)
    assert np.abs(spectral.resample(v, size).double().numpy() - ref).max() < 1e-4


@pytest.mark.parametrize(("d", "big"), [(576, 640), (64, 3584), (63, 100), (100, 63 * 2 + 1)])
def test_round_trip_is_exact_for_bandlimited_input(d: int, big: int) -> None:
    v = bandlimited(d, bins=min(d, big) // 2 - 1, batch=(2,))
    back = spectral.resample(spectral.resample(v, big), d)
    assert torch.allclose(back, v, atol=1e-5)


def test_resample_keeps_a_sampled_sinusoid_on_the_same_curve() -> None:
    n, size = 50, 80
    f = lambda t: torch.cos(2 * math.pi * 3 * t) + 0.5 * torch.sin(2 * math.pi * 7 * t)  # noqa: E731
    v = f(torch.arange(n, dtype=torch.float64) / n).float()
    expected = f(torch.arange(size, dtype=torch.float64) / size).float()
    assert torch.allclose(spectral.resample(v, size), expected, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 300), keep_frac=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_lowpass_plus_highpass_is_identity_and_lowpass_is_idempotent(
    n: int, keep_frac: float, seed: int
) -> None:
    keep = 1 + round(keep_frac * (spectral.num_bins(n) - 1))
    v = torch.randn(2, n, generator=torch.Generator().manual_seed(seed))
    low, high = spectral.lowpass(v, keep), spectral.highpass(v, keep)
    assert torch.allclose(low + high, v, atol=1e-5)
    assert torch.allclose(spectral.lowpass(low, keep), low, atol=1e-5)
    # Parseval: removing bins never adds energy.
    assert bool((low.norm(dim=-1) <= v.norm(dim=-1) + 1e-5).all())
    assert torch.allclose(low.norm(dim=-1) ** 2 + high.norm(dim=-1) ** 2, v.norm(dim=-1) ** 2, rtol=1e-4)


def test_lowpass_keeps_exactly_the_requested_bins() -> None:
    v = torch.randn(128, generator=torch.Generator().manual_seed(2))
    spec = torch.fft.rfft(spectral.lowpass(v, 10).double())
    assert spec[10:].abs().max() < 1e-4
    assert torch.allclose(spec[:10], torch.fft.rfft(v.double())[:10], atol=1e-4)
    assert torch.equal(spectral.lowpass(v, spectral.num_bins(128)), v) or torch.allclose(
        spectral.lowpass(v, spectral.num_bins(128)), v, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtype_and_shape_are_kept(dtype: torch.dtype) -> None:
    v = torch.randn(2, 3, 40).to(dtype)
    for out, shape in [
        (spectral.lowpass(v, 5), (2, 3, 40)),
        (spectral.highpass(v, 5), (2, 3, 40)),
        (spectral.resample(v, 56), (2, 3, 56)),
        (spectral.encode(v, 56, 5), (2, 3, 56)),
    ]:
        assert out.dtype == dtype and tuple(out.shape) == shape


def test_encode_is_unit_norm_lowpassed_and_resampled() -> None:
    v = torch.randn(4, 576, generator=torch.Generator().manual_seed(3))
    out = spectral.encode(v, 640, 40)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-5)
    spec = torch.fft.rfft(out.double())
    assert spec[..., 40:].abs().max() < 1e-4
    expected = spectral.resample(spectral.lowpass(v, 40), 640)
    cos = torch.nn.functional.cosine_similarity(out, expected, dim=-1)
    assert bool((cos > 0.9999).all())


@pytest.mark.parametrize(
    ("call", "names"),
    [
        (lambda v: spectral.lowpass(v, 0), ["keep", "[1, 33]"]),
        (lambda v: spectral.highpass(v, 34), ["keep", "[1, 33]"]),
        (lambda v: spectral.lowpass(v, 2.5), ["keep"]),
        (lambda v: spectral.resample(v, 0), ["size", ">= 1"]),
        (lambda v: spectral.encode(v, 0, 3), ["size"]),
        (lambda v: spectral.resample(v.clone().fill_(float("nan")), 8), ["finite"]),
        (lambda v: spectral.lowpass(v.clone().fill_(float("inf")), 3), ["finite"]),
        (lambda v: spectral.encode(torch.zeros(64), 8, 3), ["energy"]),
        (lambda v: spectral.layer_map(0, 3), ["source_layers", ">= 1"]),
        (lambda v: spectral.blend(torch.zeros(3, 4), 2.5), ["position", "[0, 2]"]),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        call(torch.randn(64))
    for name in names:
        assert name in str(info.value)


def test_layer_map_is_relative_depth() -> None:
    assert spectral.layer_map(30, 18)[0] == 0
    assert spectral.layer_map(30, 18)[-1] == pytest.approx(29)
    assert spectral.layer_map(30, 18)[9] == pytest.approx(9 * 29 / 17)
    assert spectral.layer_map(5, 5) == [0, 1, 2, 3, 4]
    assert spectral.layer_map(9, 1) == [4]


def test_layer_map_positions_stay_inside_the_source_for_every_depth_pair() -> None:
    # blend() refuses positions past the last block: 30 -> 28 once gave 29.000000000000004.
    for source in range(1, 81):
        for target in range(1, 81):
            positions = spectral.layer_map(source, target)
            assert positions[0] >= 0 and positions[-1] <= source - 1
            spectral.blend(torch.zeros(source, 2), positions[-1])


def test_blend_interpolates_the_two_nearest_directions() -> None:
    d = torch.eye(4)
    assert torch.equal(spectral.blend(d, 2), d[2])
    assert torch.allclose(spectral.blend(d, 1.25), 0.75 * d[1] + 0.25 * d[2])
    assert torch.equal(spectral.blend(list(d), 3.0), d[3])
