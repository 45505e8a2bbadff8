"""The directions the efficacy benchmark compares, all built from ONE extraction per source model.

``source_extraction`` runs the builder's extractor once (method "pca", which also yields the mean
difference) and caches both per-block direction sets on disk, keyed by model id and the pairs'
sha256. ``encode_variant`` is the builder's encoder with each step swappable: the filter
(low-pass, high-pass, none), the resampler (Fourier, or torch linear interpolation) and the
source. ``make_pack`` wraps a direction set in a real ``l2v_hub.Pack`` that records the ablation.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file

from l2v_hub import Defaults, Hook, Method, ModelRef, Pack, PairsInfo, spectral
from l2v_hub.builder import PairSet, extract
from l2v_hub.builder.pairs import tokenize_pairs

__all__ = ["Band", "Resampler", "encode_variant", "make_pack", "random_directions", "source_extraction"]

Band = Literal["low", "high", "none"]
Resampler = Literal["fourier", "linear"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def source_extraction(model: Any, tokenizer: Any, model_id: str, pairs: PairSet,
                      cache_dir: Path, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """``{"mean-diff": [L, D], "pca": [L, D]}`` for ``model`` on ``pairs``, from the disk cache
    when this model and these pairs were extracted before."""
    file = Path(cache_dir) / f"{_slug(model_id)}-{pairs.sha256()[:16]}-{len(pairs)}.safetensors"
    if file.is_file():
        return load_file(str(file))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    result = extract(model, tokenize_pairs(pairs, tokenizer), method="pca", batch_size=batch_size,
                     pad_token_id=pad or 0, padding_side=tokenizer.padding_side or "right",
                     keep_differences=True, progress=False)
    out = {"mean-diff": result.mean_difference.contiguous(), "pca": result.directions.contiguous()}
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial")
    save_file(out, str(partial), metadata={"model_id": model_id, "pairs_sha256": pairs.sha256()})
    partial.replace(file)  # a crash leaves no half-written cache entry
    return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def encode_variant(directions: torch.Tensor, hidden: int, layers: int, *, keep: int | None,
                   band: Band = "low", resampler: Resampler = "fourier") -> torch.Tensor:
    """``[Ls, Ds]`` source directions to ``[layers, hidden]`` unit rows.

    ``band="low", resampler="fourier"`` is exactly what ``build_pack`` does (spectral.encode, then
    the relative-depth layer map with blend, then unit norm); the other settings swap one step.
    """
    x = directions.float()
    if band == "low":
        x = spectral.lowpass(x, keep)
    elif band == "high":
        x = spectral.highpass(x, keep)
    if resampler == "fourier":
        x = spectral.resample(x, hidden)
    else:
        x = torch.nn.functional.interpolate(x[:, None, :], size=hidden, mode="linear",
                                            align_corners=True)[:, 0]
    x = _unit(x)
    rows = [spectral.blend(x, p) for p in spectral.layer_map(x.shape[0], layers)]
    return _unit(torch.stack(rows)).contiguous()


def random_directions(hidden: int, layers: int, seed: int) -> torch.Tensor:
    """One independent Gaussian unit direction per block (the control), seeded."""
    g = torch.Generator().manual_seed(seed)
    return _unit(torch.randn(layers, hidden, generator=g)).contiguous()


def make_pack(name: str, source: ModelRef, target: ModelRef, directions: torch.Tensor, *,
              extraction: str, pairs: PairsInfo | None, keep: int | None, resampler: str,
              strength: float, layers: tuple[int, ...], op: str, positions: str,
              ablation: dict[str, Any]) -> Pack:
    """A real pack for one row; ``stats["ablation"]`` records what the row changes."""
    if pairs is None:  # the random control comes from a seed, not from pairs
        seed_bytes = repr(ablation).encode()
        pairs = PairsInfo("none:random", 1, hashlib.sha256(seed_bytes).hexdigest())
    return Pack(
        name=name, version="0.0.0", source=source, target=target,
        method=Method(extraction=extraction, pairs=pairs, lowpass_keep=keep, resample=resampler),
        directions=directions.float().contiguous(),
        defaults=Defaults(strength=float(strength), layers=tuple(layers)),
        hook=Hook(op=op, positions=positions),
        stats={"ablation": ablation},
    ).validate()
