"""The ``calibration`` section of a v2 ``pack.json``: what was measured on the target, and why the
pack's defaults are what they are. Written by ``l2v_hub.calibrate``, shown by ``l2v-hub inspect``
and the model card, checked field by field on load (a broken record is a ``PackError``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .metadata import POSITIONS, SCALE_MEASURES, _Reader, check_model_id

__all__ = ["CRITERIA", "AccuracyGuard", "Behaviour", "BehaviourPoint", "Calibration", "GridPoint",
           "Measures", "parse_calibration"]

# How the default strength was chosen: the behaviour a CoT pack exists to change, against its
# random control, within a readability and an accuracy guard; or (packs before issue 18, and the
# fallback when no strength moves the behaviour or the guard refuses it) the neutral-text
# perplexity budget alone.
CRITERIA = ("behaviour", "perplexity")


@dataclass(frozen=True)
class Measures:
    """One row of the calibration: neutral-text perplexity and, on the calibration problems,
    accuracy, step-by-step share and mean answer length in tokens (``None`` where not run)."""

    perplexity: float
    accuracy: float | None = None
    step_by_step: float | None = None
    answer_tokens: float | None = None


@dataclass(frozen=True)
class GridPoint:
    """One point of the strength sweep: neutral-text perplexity at ``strength`` under ``positions``."""

    strength: float
    positions: str
    perplexity: float


@dataclass(frozen=True)
class BehaviourPoint:
    """One strength of the behaviour sweep (l2v_hub.measure.behaviour): the share of short
    answers that open with reasoning and are readable, with the pack and with its random control,
    and the pack's readable share (all 0..1); ``p``: McNemar's exact p of the pack's against the
    control's answers on the same problems (``None`` in records written before it was kept)."""

    strength: float
    positions: str
    reasons: float
    control_reasons: float
    readable: float
    p: float | None = None


@dataclass(frozen=True)
class AccuracyGuard:
    """The accuracy guard of a behaviour calibration: the calibration problems answered under the
    ``regime`` prompt (``cot``: the paper's) with ``tokens`` new tokens, unpatched and with the pack
    at ``strength`` / ``positions``; accuracies and truncated shares 0..1. ``passed`` when the
    pack's accuracy is at least the unpatched one minus ``margin``."""

    regime: str
    tokens: int
    margin: float
    strength: float
    positions: str
    unpatched_accuracy: float
    pack_accuracy: float
    unpatched_truncated: float
    pack_truncated: float
    passed: bool


@dataclass(frozen=True)
class Behaviour:
    """The behaviour measurement a ``criterion="behaviour"`` calibration chose its strength by:
    ``measure`` read off ``tokens``-token greedy answers under the ``regime`` prompt, readable
    below ``readable_ppl``; ``unpatched`` is the unpatched model's share and
    ``unpatched_readable`` the share of its answers that are readable (the guard's reference);
    a point counts as a rise when its ``p`` is below ``alpha``. ``guard``: the accuracy guard of
    the strength the sweep chose (``None``: none chosen, or a record from before the guard)."""

    measure: str
    tokens: int
    regime: str
    readable_ppl: float
    unpatched: float
    unpatched_readable: float
    points: tuple[BehaviourPoint, ...]
    alpha: float | None = None
    guard: AccuracyGuard | None = None


@dataclass(frozen=True)
class Calibration:
    """A pack's calibration on one target model (docs/calibration.md)."""

    model_id: str
    revision: str | None
    dtype: str
    device: str
    l2v_hub_version: str
    created: str
    scale_measure: str
    budget: float  # allowed relative rise of the neutral-text perplexity, e.g. 0.10
    text_sha256: str
    problems: dict[str, Any]  # {"source", "count", "sha256"}
    # {"source", "count", "sha256", "read"} of the pairs s_i / cos_own came from ("read": how each
    # was read, builder.pairs.read_spans; absent in older records: "last")
    pairs: dict[str, Any]
    grid: tuple[GridPoint, ...]
    strength: float
    positions: str
    reason: str
    baseline: Measures
    pack: Measures
    control: Measures
    control_seed: int
    cosine_own: dict[str, float]  # steered block index (as a string) -> cosine
    criterion: str = "perplexity"
    behaviour: Behaviour | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["grid"] = [asdict(p) for p in self.grid]
        if self.behaviour is None:
            del data["behaviour"]
            return data
        b = data["behaviour"]
        b["points"] = [{k: v for k, v in asdict(p).items() if v is not None or k != "p"}
                       for p in self.behaviour.points]
        for key in ("alpha", "guard"):  # absent in records from before them, and left so
            if b[key] is None:
                del b[key]
        return data


def _number(r: _Reader, key: str, optional: bool = False) -> float | None:
    value = r.get(key, "a finite number", (int, float), optional)
    if value is None:
        return None
    if not math.isfinite(value):
        raise r.fail(key, "a finite number", value)
    return float(value)


def _measures(r: _Reader) -> Measures:
    return Measures(perplexity=_number(r, "perplexity"),  # type: ignore[arg-type]
                    accuracy=_number(r, "accuracy", True), step_by_step=_number(r, "step_by_step", True),
                    answer_tokens=_number(r, "answer_tokens", True))


def _source(r: _Reader) -> dict[str, Any]:
    return {"source": r.string("source"), "count": r.integer("count", 0, 1 << 62),
            "sha256": r.string("sha256")}


def _behaviour(r: _Reader) -> Behaviour:
    items = r.get("points", "a list of sweep points", (list,))
    points = []
    for i, item in enumerate(items):
        p = _Reader(item, f"calibration.behaviour.points.{i}")
        points.append(BehaviourPoint(
            strength=_number(p, "strength"), positions=p.string("positions", choices=POSITIONS),  # type: ignore[arg-type]
            reasons=_number(p, "reasons"), control_reasons=_number(p, "control_reasons"),  # type: ignore[arg-type]
            readable=_number(p, "readable"), p=_number(p, "p", True)))  # type: ignore[arg-type]
    guard = None
    if isinstance(r.data, dict) and r.data.get("guard") is not None:
        g = r.child("guard")
        passed = g.get("passed", "true or false", (bool,))
        guard = AccuracyGuard(
            regime=g.string("regime"), tokens=g.integer("tokens", 1, 1 << 20),
            margin=_number(g, "margin"), strength=_number(g, "strength"),  # type: ignore[arg-type]
            positions=g.string("positions", choices=POSITIONS),
            unpatched_accuracy=_number(g, "unpatched_accuracy"),  # type: ignore[arg-type]
            pack_accuracy=_number(g, "pack_accuracy"),  # type: ignore[arg-type]
            unpatched_truncated=_number(g, "unpatched_truncated"),  # type: ignore[arg-type]
            pack_truncated=_number(g, "pack_truncated"), passed=passed)  # type: ignore[arg-type]
    return Behaviour(measure=r.string("measure"), tokens=r.integer("tokens", 1, 1 << 20),
                     regime=r.string("regime"), readable_ppl=_number(r, "readable_ppl"),  # type: ignore[arg-type]
                     unpatched=_number(r, "unpatched"),  # type: ignore[arg-type]
                     unpatched_readable=_number(r, "unpatched_readable"),  # type: ignore[arg-type]
                     points=tuple(points), alpha=_number(r, "alpha", True),  # type: ignore[arg-type]
                     guard=guard)


def _pairs(r: _Reader) -> dict[str, Any]:
    read = r.string("read", optional=True)
    return {**_source(r), **({"read": read} if read is not None else {})}


def parse_calibration(data: Any) -> Calibration:
    """Check a decoded ``calibration`` object; raises ``PackError`` naming the field at fault."""
    r = _Reader(data, "calibration")
    grid_items = r.get("grid", "a list of sweep points", (list,))
    grid = []
    for i, item in enumerate(grid_items):
        g = _Reader(item, f"calibration.grid.{i}")
        grid.append(GridPoint(strength=_number(g, "strength"),  # type: ignore[arg-type]
                              positions=g.string("positions", choices=POSITIONS),
                              perplexity=_number(g, "perplexity")))  # type: ignore[arg-type]
    cos = r.get("cosine_own", "an object block -> cosine", (dict,))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in cos.values()):
        raise r.fail("cosine_own", "an object block -> cosine", cos)
    return Calibration(
        model_id=check_model_id(r.string("model_id"), "pack.json: 'calibration.model_id'"),
        revision=r.string("revision", optional=True),
        dtype=r.string("dtype"),
        device=r.string("device"),
        l2v_hub_version=r.string("l2v_hub_version"),
        created=r.string("created"),
        scale_measure=r.string("scale_measure", choices=SCALE_MEASURES),
        budget=_number(r, "budget"),  # type: ignore[arg-type]
        text_sha256=r.string("text_sha256"),
        problems=_source(r.child("problems")),
        pairs=_pairs(r.child("pairs")),
        grid=tuple(grid),
        strength=_number(r, "strength"),  # type: ignore[arg-type]
        positions=r.string("positions", choices=POSITIONS),
        reason=r.get("reason", "a string", (str,)),
        baseline=_measures(r.child("baseline")),
        pack=_measures(r.child("pack")),
        control=_measures(r.child("control")),
        control_seed=r.integer("control_seed", 0, (1 << 63) - 1),
        cosine_own={str(k): float(v) for k, v in cos.items()},
        criterion=r.string("criterion", optional=True, choices=CRITERIA) or "perplexity",
        behaviour=_behaviour(r.child("behaviour")) if isinstance(data, dict) and data.get(
            "behaviour") is not None else None,
    )
