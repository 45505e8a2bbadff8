"""The random-direction control: what any push of the same size does, to compare a pack with."""

from __future__ import annotations

import torch

__all__ = ["random_directions"]


def random_directions(hidden: int, layers: int, seed: int) -> torch.Tensor:
    """One independent Gaussian unit direction per block, ``[layers, hidden]`` float32, seeded
    (the same seed gives the same directions on every machine: CPU generator)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(layers, hidden, generator=g, dtype=torch.float64)
    return (x / x.norm(dim=-1, keepdim=True)).float().contiguous()
