"""How ``l2v_hub.calibrate`` chooses a pack's default strength and positions policy
(docs/calibration.md): the behaviour criterion (the default), its accuracy guard, and the
neutral-text perplexity budget (the fallback, and ``criterion="perplexity"``).

Behaviour: the **smallest** grid strength whose 10-token answers open with reasoning and stay
readable significantly more often than under the random control (McNemar's exact p below
``alpha``), more often than unpatched, and with a readable share within 90% of the unpatched
one. The smallest, not the largest rise: on Qwen2.5-Coder-0.5B the largest rise (λ = 1) lengthened
answers to a CoT prompt past any budget and cut accuracy from 52% to 1%, while λ = 0.25 already
moved 0.93 of the short answers (docs/reasoning.md). The guard then answers the calibration
problems under the CoT prompt with a budget long enough for the unpatched model to finish, and
refuses the strength when the pack's accuracy falls more than ``margin`` below the unpatched one.
"""

from __future__ import annotations

import logging
from typing import Any

from .calibration_record import AccuracyGuard, Behaviour, BehaviourPoint, GridPoint
from .loader import patch
from .measure import answer_problems, perplexity, summarize
from .measure.behaviour import READABLE_PPL, behaviour_sweep
from .measure.problems import Problem
from .pack import Pack

__all__ = ["ACCURACY_MARGIN", "ALPHA", "BEHAVIOUR_GRID", "BEHAVIOUR_POSITIONS", "BEHAVIOUR_TOKENS",
           "GUARD_TOKENS", "accuracy_guard", "behaviour_reason", "by_behaviour", "by_perplexity",
           "choose", "fallback_reason", "perplexity_sweep"]

log = logging.getLogger(__name__)

# The behaviour sweep, in units of the target's own CoT norm: the 0.5B's own direction moved
# reasoning at 0.25 and broke at 2-4 (docs/reasoning.md).
BEHAVIOUR_GRID: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)
BEHAVIOUR_POSITIONS: tuple[str, ...] = ("prompt_last_and_generated",)
BEHAVIOUR_TOKENS = 10
ALPHA = 0.05
# The guard's budget: the 0.5B's unpatched CoT answers average 220 tokens and 30% of them reach
# 256 (docs/reasoning.md, 3); a truncated answer scores as wrong, so a short budget would blame
# the pack for the budget.
GUARD_TOKENS = 400
# 2 of the 20 default calibration problems: a fall the guard cannot tell from noise at that n.
ACCURACY_MARGIN = 0.10
_READABLE_GUARD = 0.9  # a chosen strength keeps at least 90% of the unpatched readable share


def perplexity_sweep(model: Any, tokenizer: Any, pack: Pack, text: str, base: float,
                     budget: float, grid: tuple[float, ...], positions: str,
                     model_id: str) -> tuple[float, list[GridPoint]]:
    """``(strength, points)``: the largest grid strength before the neutral-text perplexity first
    exceeds ``(1 + budget) * base`` (0 when the first does), and every point measured."""
    chosen, points = 0.0, []
    # One patch per policy; the strength changes without re-patching.
    with patch(model, pack, strength=grid[0], positions=positions, model_id=model_id,
               strict=False) as handle:
        for lam in grid:
            handle.strength = lam
            ppl = perplexity(model, tokenizer, text)
            points.append(GridPoint(lam, positions, round(ppl, 4)))
            if ppl > (1 + budget) * base:
                break
            chosen = lam
    return chosen, points


def by_perplexity(model: Any, tokenizer: Any, pack: Pack, text: str, base: float, budget: float,
                  grid: tuple[float, ...], positions: tuple[str, ...], model_id: str
                  ) -> tuple[float, str, list[GridPoint], str]:
    """``(strength, policy, points, reason)`` by the perplexity budget: the policy that allows
    the larger strength (ties: the first)."""
    sweeps = {p: perplexity_sweep(model, tokenizer, pack, text, base, budget, grid, p, model_id)
              for p in positions}
    policy = max(positions, key=lambda p: (sweeps[p][0], -positions.index(p)))
    strength = sweeps[policy][0]
    others = ", ".join(f"{p}: {sweeps[p][0]:g}" for p in positions if p != policy)
    points = sweeps[policy][1]
    broke = points[-1] if points and points[-1].strength > strength else None
    reason = (f"largest grid strength whose neutral-text perplexity stays within +{budget:.0%} of "
              f"unpatched ({base:.4g})" + (f"; {broke.strength:g} gave {broke.perplexity:.4g}"
                                           if broke else "; no grid point exceeded it")
              + (f"; positions {policy} allowed the largest strength ({others})" if others else ""))
    if strength == 0:
        reason = (f"every grid strength raised the neutral-text perplexity by more than "
                  f"{budget:.0%}: default strength 0 (the pack does nothing unless asked)")
        log.warning("%s: %s", pack.name, reason)
    return strength, policy, [pt for s in sweeps.values() for pt in s[1]], reason


def choose(record: Behaviour, alpha: float = ALPHA) -> BehaviourPoint | None:
    """The behaviour criterion's point of ``record`` (module docstring): the smallest strength
    that rises significantly over the control and the unpatched share within the readability
    guard (ties: the larger rise, then the first policy); ``None`` when no point does."""
    fit = [pt for pt in record.points if pt.readable >= _READABLE_GUARD * record.unpatched_readable
           and pt.reasons > max(pt.control_reasons, record.unpatched)
           and pt.p is not None and pt.p < alpha]
    return min(fit, key=lambda pt: (pt.strength, pt.control_reasons - pt.reasons), default=None)


def by_behaviour(model: Any, tokenizer: Any, pack: Pack, control: Pack, problems: list[Problem],
                 grid: tuple[float, ...], positions: tuple[str, ...], batch_size: int,
                 model_id: str, alpha: float = ALPHA) -> tuple[Behaviour, BehaviourPoint | None]:
    """``(record, point)``: the behaviour sweep of every policy in ``positions`` and the point
    :func:`choose` picks from it."""
    sweeps = [behaviour_sweep(model, tokenizer, pack, control, problems, grid, p,
                              tokens=BEHAVIOUR_TOKENS, batch_size=batch_size, model_id=model_id)
              for p in positions]
    unpatched, readable = sweeps[0][:2]
    record = Behaviour("opens_reasoning", BEHAVIOUR_TOKENS, "direct", READABLE_PPL, unpatched,
                       readable, tuple(pt for s in sweeps for pt in s[2]), alpha=alpha)
    return record, choose(record, alpha)


def accuracy_guard(model: Any, tokenizer: Any, pack: Pack, strength: float, positions: str,
                   problems: list[Problem], *, tokens: int = GUARD_TOKENS,
                   margin: float = ACCURACY_MARGIN, batch_size: int = 20,
                   model_id: str | None = None) -> AccuracyGuard:
    """The accuracy guard (module docstring): ``problems`` answered greedily under the ``cot``
    prompt with ``tokens`` new tokens, unpatched and with ``pack`` at ``strength`` (units of
    s_i) under ``positions``."""
    def answers() -> dict[str, Any]:
        return summarize(answer_problems(model, tokenizer, problems, tokens, batch_size, "cot"))

    unpatched = answers()
    with patch(model, pack, strength=strength, positions=positions, model_id=model_id,
               strict=False):
        steered = answers()
    return AccuracyGuard(
        "cot", tokens, margin, strength, positions,
        round(unpatched["accuracy"], 4), round(steered["accuracy"], 4),
        round(unpatched["truncated"], 4), round(steered["truncated"], 4),
        # A hair of slack so that a fall of exactly ``margin`` (2 of 20) passes in floats too.
        steered["accuracy"] >= unpatched["accuracy"] - margin - 1e-9)


def behaviour_reason(record: Behaviour, point: BehaviourPoint, count: int) -> str:
    """Why the behaviour criterion chose ``point``, in one sentence."""
    guard = record.guard
    return (f"the smallest grid strength whose {record.tokens}-token answers to the {count} "
            f"calibration problems open with reasoning and stay readable more often than under "
            f"the random control (p = {point.p:.2g} < {record.alpha:g}): {point.reasons:.2f} vs "
            f"{point.control_reasons:.2f} (unpatched {record.unpatched:.2f}; readable "
            f"{point.readable:.2f}, unpatched {record.unpatched_readable:.2f})"
            + ("" if guard is None else
               f"; CoT accuracy at {guard.tokens} tokens {guard.pack_accuracy:.2f} vs "
               f"{guard.unpatched_accuracy:.2f} unpatched (allowed fall {guard.margin:.2f})"))


def fallback_reason(record: Behaviour, reason: str) -> str:
    """Why a behaviour calibration fell back to the perplexity budget, before ``reason``."""
    g = record.guard
    why = ("no behaviour-grid strength made short answers open with reasoning significantly more "
           "often than the random control and the unpatched model" if g is None else
           f"the accuracy guard refused strength {g.strength:g}: CoT accuracy at {g.tokens} tokens "
           f"{g.pack_accuracy:.2f} against {g.unpatched_accuracy:.2f} unpatched (allowed fall "
           f"{g.margin:.2f}; truncated {g.pack_truncated:.2f} vs {g.unpatched_truncated:.2f})")
    return f"{why}: {reason}"
