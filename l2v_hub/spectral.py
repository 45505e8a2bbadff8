"""The spectral core of L2V-CoT: low-pass filtering and band-limited Fourier resampling.

A direction is treated as a signal along its hidden-dimension index. Every function works on the
last dimension, accepts any leading batch shape and any floating dtype, computes in float32 and
returns the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["blend", "encode", "highpass", "layer_map", "lowpass", "num_bins", "resample"]


def num_bins(size: int) -> int:
    """Number of non-negative frequency bins (DC up to Nyquist) of a real signal of ``size``."""
    return size // 2 + 1


def _as_float32(v: torch.Tensor, name: str = "v") -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {v.dtype}")
    if v.ndim == 0 or v.shape[-1] < 1:
        raise ValueError(f"{name} must have a last dimension of size >= 1, got shape {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return v.to(torch.float32)


def _check_keep(keep: int, size: int) -> None:
    bins = num_bins(size)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= bins:
        raise ValueError(
            f"keep must be an int in [1, {bins}] for a signal of size {size}, got {keep!r}"
        )


def _band(v: torch.Tensor, keep: int, low: bool) -> torch.Tensor:
    x = _as_float32(v)
    size = x.shape[-1]
    _check_keep(keep, size)
    spectrum = torch.fft.rfft(x, dim=-1)
    if low:
        spectrum[..., keep:] = 0
    else:
        spectrum[..., :keep] = 0
    return torch.fft.irfft(spectrum, n=size, dim=-1).to(v.dtype)


def lowpass(v: torch.Tensor, keep: int) -> torch.Tensor:
    """Keep the ``keep`` lowest frequency bins (DC included) and their negative mirrors.

    ``keep`` is in ``[1, size // 2 + 1]``; the largest value is the identity.
    """
    return _band(v, keep, low=True)


def highpass(v: torch.Tensor, keep: int) -> torch.Tensor:
    """The complement of :func:`lowpass`: ``lowpass(v, k) + highpass(v, k) == v``."""
    return _band(v, keep, low=False)


def resample(v: torch.Tensor, size: int) -> torch.Tensor:
    """Band-limited Fourier resampling of the last dimension to ``size`` samples.

    Zero-pads (up) or truncates (down) the spectrum, with the amplitude convention of
    ``scipy.signal.resample``: the output samples the same band-limited periodic function, so a
    signal band-limited below both Nyquist frequencies survives a round trip exactly.
    """
    x = _as_float32(v)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    n = x.shape[-1]
    if size == n:
        return v.clone()
    m = min(n, size)
    spectrum = torch.fft.rfft(x, dim=-1)[..., : num_bins(m)].clone()
    if m % 2 == 0:
        # The bin at m/2 has no partner in the shorter signal: downsampling folds the +/- pair
        # into it, upsampling splits it into a pair.
        spectrum[..., m // 2] *= 2.0 if size < n else 0.5
    out = torch.fft.irfft(spectrum, n=size, dim=-1) * (size / n)
    return out.to(v.dtype)


def encode(v: torch.Tensor, size: int, keep: int | None) -> torch.Tensor:
    """The L2V-CoT intervention encoder: low-pass to ``keep`` bins, resample to ``size``, unit norm.

    ``keep=None`` skips the filter (the unfiltered ablation).
    """
    filtered = v if keep is None else lowpass(v, keep)
    out = resample(filtered, size).to(torch.float32)
    norm = torch.linalg.vector_norm(out, dim=-1, keepdim=True)
    if bool((norm <= torch.finfo(torch.float32).tiny).any()):
        raise ValueError("v has no energy left in the kept band; cannot normalise to unit length")
    return (out / norm).to(v.dtype)


def layer_map(source_layers: int, target_layers: int) -> list[float]:
    """Relative-depth map: target block ``j`` reads the fractional source position
    ``j * (Ls - 1) / (Lt - 1)``. A single-block target reads the source's middle.
    """
    for name, value in (("source_layers", source_layers), ("target_layers", target_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if target_layers == 1:
        return [(source_layers - 1) / 2]
    # j * (Ls - 1) is an exact integer, so one division keeps the last position exactly Ls - 1
    # (multiplying by a rounded step gave 29.000000000000004 for 30 -> 28 blocks).
    return [j * (source_layers - 1) / (target_layers - 1) for j in range(target_layers)]


def blend(directions: torch.Tensor | Sequence[torch.Tensor], position: float) -> torch.Tensor:
    """Linear blend of the two source directions nearest to a fractional ``position``.

    ``directions`` is ``[num_source_layers, hidden]`` (or a sequence of ``[hidden]`` tensors).
    """
    stacked = directions if isinstance(directions, torch.Tensor) else torch.stack(list(directions))
    count = stacked.shape[0]
    if not (isinstance(position, int | float) and math.isfinite(position)) or not (
        0 <= position <= count - 1
    ):
        raise ValueError(f"position must be a finite number in [0, {count - 1}], got {position!r}")
    lo = math.floor(position)
    hi = min(lo + 1, count - 1)
    weight = position - lo
    if weight == 0:
        return stacked[lo].clone()
    return (1 - weight) * stacked[lo] + weight * stacked[hi]
