"""Paired statistics of two rows of right/wrong answers to the same problems (docs/eval.md).

- McNemar's exact test: of the discordant problems (right in one row only), ``b`` went one way
  and ``c`` the other; under no difference ``b ~ Binomial(b + c, 1/2)``, and the p-value is the
  two-sided exact binomial test (McNemar 1947; the exact form as in statsmodels' ``mcnemar(exact=True)``).
- The paired bootstrap: resample problems with replacement, keeping each problem's two answers
  together; a percentile interval of the accuracy difference (scipy.stats.bootstrap, paired).
- Power: the probability that the exact test rejects at ``alpha`` when the true difference is
  ``delta`` and a share ``discordant`` of the problems are answered differently, summed exactly
  over the binomial distribution of the discordant count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Paired", "compare", "mcnemar_exact", "mcnemar_power", "paired_bootstrap", "power_of"]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (1.0 when both are 0)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(b, b + c, 0.5).pvalue)


def paired_bootstrap(x: Sequence[bool], y: Sequence[bool], *, resamples: int = 10_000,
                     level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``mean(x) - mean(y)`` (accuracy difference, in [-1, 1]) over
    problems resampled in pairs. ``x``, ``y``: right/wrong per problem, same order and length."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"x and y must be equal-length sequences of >= 2 answers, got "
                         f"{a.shape} and {b.shape}")
    if np.all(a - b == a[0] - b[0]):  # every pair differs alike: the interval is a point
        return float(a[0] - b[0]), float(a[0] - b[0])
    result = stats.bootstrap((a, b), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis),
                             paired=True, vectorized=True, n_resamples=resamples,
                             confidence_level=level, method="percentile",
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_power(n: int, discordant: float, delta: float = 0.05, alpha: float = 0.05) -> float:
    """Power of the exact McNemar test with ``n`` paired problems, a discordant share
    ``discordant`` (>= ``|delta|``) and a true accuracy difference ``delta``, at level ``alpha``."""
    if not 0 <= abs(delta) <= discordant <= 1 or n < 1:
        raise ValueError(f"need n >= 1 and |delta| <= discordant <= 1, got n={n}, "
                         f"discordant={discordant}, delta={delta}")
    if discordant == 0:
        return 0.0
    total = 0.0
    lean = (discordant + abs(delta)) / (2 * discordant)
    for d in range(1, n + 1):
        k = np.arange(d + 1)
        p = np.minimum(1.0, 2 * np.minimum(stats.binom.cdf(k, d, 0.5), stats.binom.sf(k - 1, d, 0.5)))
        reject = k[p <= alpha]
        if reject.size:
            total += stats.binom.pmf(d, n, discordant) * stats.binom.pmf(reject, d, lean).sum()
    return float(total)


@dataclass(frozen=True)
class Paired:
    """One row against another on the same problems: ``won`` (right here, wrong there),
    ``lost``, the accuracy difference, its exact McNemar p-value and bootstrap interval (None
    for a single problem)."""

    against: str
    won: int
    lost: int
    difference: float
    p_value: float
    ci_low: float | None
    ci_high: float | None


def compare(row: Sequence[bool], other: Sequence[bool], against: str, *, seed: int = 0) -> Paired:
    """``row`` against ``other`` (right/wrong per problem, same order)."""
    if len(row) != len(other):
        raise ValueError(f"rows answer different problems: {len(row)} and {len(other)} answers")
    won = sum(a and not b for a, b in zip(row, other, strict=True))
    lost = sum(b and not a for a, b in zip(row, other, strict=True))
    # One problem has no interval (None, not NaN: NaN is not JSON).
    low, high = paired_bootstrap(row, other, seed=seed) if len(row) >= 2 else (None, None)
    return Paired(against, won, lost, (won - lost) / max(1, len(row)), mcnemar_exact(won, lost),
                  low, high)


def power_of(paired: Paired, n: int, delta: float = 0.05, alpha: float = 0.05) -> float:
    """The power of ``paired``'s exact test over ``n`` problems to detect a true difference of
    ``delta`` at ``alpha``, at its observed discordant share (at least ``|delta|``, so that a
    comparison with no discordant problem still gets a power): what an eval report gives."""
    discordant = max((paired.won + paired.lost) / max(1, n), abs(delta))
    return mcnemar_power(n, discordant, delta, alpha)
