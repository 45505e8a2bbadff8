"""The rows of an evaluation: what each one applies to the model, and the key its answers are kept
under (the same row asked again, after an interruption, finds its answers by that key)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from ..measure import random_directions
from ..pack import Pack

__all__ = ["CONTROLS", "RowSpec", "plan_rows"]

CONTROLS = ("random", "none")


@dataclass(frozen=True)
class RowSpec:
    """One row. ``kind``: ``unpatched``, ``pack``, ``control`` (the pack's seeded random unit
    directions, same s_i, strength, blocks, op and positions) or ``reference`` (unpatched, asked
    with the explicit step-by-step prompt). ``pack`` is what is applied (None: nothing);
    ``control`` names a pack row's control row."""

    name: str
    kind: str
    regime: str
    pack: Pack | None = None
    strength: float | None = None
    positions: str | None = None
    control: str | None = None

    def key(self, context: dict[str, Any]) -> str:
        """A digest of everything that decides this row's answers (``context``: model, token
        budget), so that resumed answers are only ever reused for the same row."""
        applied = None
        if self.pack is not None:
            p = self.pack
            applied = {"name": p.name, "version": p.version,
                       "directions": hashlib.sha256(p.directions.float().numpy().tobytes()).hexdigest(),
                       "scale": [p.scale.measure, p.scale.values] if p.scale else None,
                       "layers": list(p.defaults.layers), "op": p.hook.op,
                       "strength": self.strength, "positions": self.positions}
        data = json.dumps({"regime": self.regime, "applied": applied, **context}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:24]


def _labels(packs: list[Pack]) -> list[str]:
    """``pack`` for one pack; else ``pack from SOURCE`` (the source LLM's name: a transferred
    pack and the target's own direction differ there), numbered where two packs share it."""
    if len(packs) == 1:
        return ["pack"]
    names = [f"pack from {p.source.model_id.rsplit('/', 1)[-1]}" for p in packs]
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def plan_rows(packs: list[Pack], strengths: tuple[float, ...] | None, positions: str | None,
              control: str, regime: str, reference: bool, seed: int) -> list[RowSpec]:
    """Unpatched first; then each pack at each strength (default: its own default strength),
    each followed by its control; last the explicit-CoT reference (unless ``regime`` is ``cot``)."""
    rows = [RowSpec("unpatched", "unpatched", regime)]
    for pack, label in zip(packs, _labels(packs), strict=True):
        random_pack = replace(pack, directions=random_directions(
            pack.target.hidden_size, pack.target.num_layers, seed))
        for strength in strengths or (pack.defaults.strength,):
            where = positions or pack.hook.positions
            name = f"{label} {strength:g}"
            twin = f"random {strength:g}" if len(packs) == 1 else f"random ({label}) {strength:g}"
            rows.append(RowSpec(name, "pack", regime, pack, strength, where,
                                twin if control == "random" else None))
            if control == "random":
                rows.append(RowSpec(twin, "control", regime, random_pack, strength, where))
    if reference and regime != "cot":
        rows.append(RowSpec("cot prompt", "reference", "cot"))
    return rows
