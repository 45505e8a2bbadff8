"""l2v_hub.measure.stats against references written here: the exact McNemar p-value as a sum of
binomial probabilities (scipy.stats.binom), the paired bootstrap as a plain numpy percentile
bootstrap, and the power as a Monte-Carlo simulation of the exact test."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy.stats import binom

from l2v_hub.measure.stats import compare, mcnemar_exact, mcnemar_power, paired_bootstrap


def reference_p(b: int, c: int) -> float:
    """Two-sided exact McNemar: the probability, under Binomial(b + c, 1/2), of every discordant
    split at most as likely as the one seen (symmetric, so twice the smaller tail)."""
    n = b + c
    if n == 0:
        return 1.0
    k = np.arange(n + 1)
    pmf = binom.pmf(k, n, 0.5)
    return float(min(1.0, pmf[pmf <= pmf[b] * (1 + 1e-7)].sum()))


@pytest.mark.parametrize(("b", "c", "p"), [
    (1, 9, 0.021484375),  # 2 * (1 + 10) / 2**10
    (0, 5, 0.0625),  # 2 / 2**5
    (0, 1, 1.0),
    (3, 3, 1.0),
    (0, 0, 1.0),
    (10, 0, 2 / 1024),
])
def test_mcnemar_exact_known_values(b: int, c: int, p: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12, abs=1e-15)


def test_mcnemar_exact_matches_the_binomial_sum_over_a_grid() -> None:
    for b in range(0, 31):
        for c in range(0, 31):
            got = mcnemar_exact(b, c)
            assert 0 <= got <= 1
            assert got == pytest.approx(reference_p(b, c), rel=1e-9, abs=1e-15), (b, c)
            assert got == mcnemar_exact(c, b)  # two-sided: symmetric in b and c
    for b, c in [(40, 60), (120, 80), (7, 250), (300, 300)]:
        assert mcnemar_exact(b, c) == pytest.approx(reference_p(b, c), rel=1e-9, abs=1e-300)


def test_mcnemar_exact_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_exact(-1, 3)


def numpy_bootstrap(x: list[bool], y: list[bool], resamples: int, seed: int) -> tuple[float, float]:
    a, b = np.asarray(x, float), np.asarray(y, float)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(resamples, len(a)))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def rows(n: int, acc_x: float, acc_y: float, seed: int) -> tuple[list[bool], list[bool]]:
    r = np.random.default_rng(seed)
    x = r.random(n) < acc_x
    # y agrees with x on most problems (paired answers are correlated, as real rows are)
    y = np.where(r.random(n) < 0.7, x, r.random(n) < acc_y)
    return x.tolist(), y.tolist()


@pytest.mark.parametrize(("n", "acc_x", "acc_y", "seed"), [
    (200, 0.6, 0.4, 0), (300, 0.3, 0.3, 1), (120, 0.8, 0.5, 2), (500, 0.1, 0.15, 3),
])
def test_paired_bootstrap_matches_a_numpy_percentile_bootstrap(n: int, acc_x: float, acc_y: float,
                                                               seed: int) -> None:
    x, y = rows(n, acc_x, acc_y, seed)
    low, high = paired_bootstrap(x, y, resamples=10_000, seed=seed)
    ref_low, ref_high = numpy_bootstrap(x, y, 10_000, seed + 100)
    # Monte-Carlo error of a 2.5% percentile with 10,000 resamples is ~0.1 SD of the
    # distribution; the distribution is also discrete in steps of 1/n.
    sd = float(np.std(np.asarray(x, float) - np.asarray(y, float)) / np.sqrt(n))
    tol = 0.15 * sd + 1.0 / n
    assert low == pytest.approx(ref_low, abs=tol)
    assert high == pytest.approx(ref_high, abs=tol)
    observed = float(np.mean(x) - np.mean(y))
    assert low <= observed <= high
    assert low < high
    # the interval is roughly the normal one: observed +- 1.96 SD (a sanity bound)
    assert high - low == pytest.approx(2 * 1.96 * sd, rel=0.25)


def test_paired_bootstrap_is_seeded() -> None:
    x, y = rows(100, 0.5, 0.4, 7)
    assert paired_bootstrap(x, y, seed=3) == paired_bootstrap(x, y, seed=3)


def test_paired_bootstrap_keeps_pairs_together() -> None:
    # Every problem's two answers differ the same way: an unpaired bootstrap would give a wide
    # interval, the paired one a single point.
    x = [True, False] * 20
    y = [False, False] * 20
    y2 = [not v for v in x]
    assert paired_bootstrap(x, x) == (0.0, 0.0)
    assert paired_bootstrap(x, list(x)) == (0.0, 0.0)
    assert paired_bootstrap([True] * 30, [False] * 30) == (1.0, 1.0)
    low, high = paired_bootstrap(x, y)
    assert 0 < low <= 0.5 <= high < 1
    # x against its negation: equal accuracies, but a resample of pairs can draw more (1, 0)
    # than (0, 1) pairs; the interval straddles 0.
    low, high = paired_bootstrap(x, y2)
    assert low < 0 < high


@pytest.mark.parametrize(("x", "y"), [
    ([True, False, True], [True, False]),
    ([True], [False]),
    ([], []),
    ([[True, False], [True, False]], [[True, False], [True, False]]),
])
def test_paired_bootstrap_refuses_rows_of_other_lengths(x: list, y: list) -> None:
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap(x, y)


def simulated_power(n: int, discordant: float, delta: float, alpha: float, sims: int,
                    seed: int) -> float:
    """Rejection rate of the exact McNemar test (reference_p) on simulated paired rows."""
    r = np.random.default_rng(seed)
    lean = (discordant + abs(delta)) / (2 * discordant)
    d = r.binomial(n, discordant, size=sims)
    b = r.binomial(d, lean)
    cache: dict[tuple[int, int], float] = {}
    rejected = 0
    for bi, di in zip(b.tolist(), d.tolist(), strict=True):
        key = (bi, di - bi)
        if key not in cache:
            cache[key] = reference_p(*key)
        rejected += cache[key] <= alpha
    return rejected / sims


@pytest.mark.parametrize(("n", "discordant", "delta"), [
    (100, 0.2, 0.05), (300, 0.15, 0.05), (400, 0.1, 0.05), (60, 0.3, 0.2), (200, 0.2, -0.08),
])
def test_mcnemar_power_matches_a_simulation_of_the_exact_test(n: int, discordant: float,
                                                              delta: float) -> None:
    got = mcnemar_power(n, discordant, delta, 0.05)
    assert got == pytest.approx(simulated_power(n, discordant, delta, 0.05, 6000, n), abs=0.03)


def test_mcnemar_power_grows_with_n_and_with_the_difference() -> None:
    powers = [mcnemar_power(n, 0.2, 0.05) for n in (50, 100, 200, 400, 800)]
    assert all(a < b for a, b in pairwise(powers)), powers
    assert powers[-1] > 0.8 and powers[0] < 0.3
    by_delta = [mcnemar_power(200, 0.2, d) for d in (0.0, 0.05, 0.1, 0.15)]
    assert all(a < b for a, b in pairwise(by_delta)), by_delta


def test_mcnemar_power_without_a_difference_is_at_most_alpha() -> None:
    # The exact test is conservative: with no true difference it rejects at most alpha of the
    # time, and not far below it once there are many discordant pairs.
    for n, alpha in [(100, 0.05), (400, 0.05), (400, 0.01)]:
        size = mcnemar_power(n, 0.25, 0.0, alpha)
        assert 0.4 * alpha < size <= alpha
    assert mcnemar_power(100, 0.0, 0.0) == 0.0


@pytest.mark.parametrize(("n", "discordant", "delta"), [(0, 0.2, 0.05), (100, 0.04, 0.05),
                                                          (100, 1.5, 0.05)])
def test_mcnemar_power_refuses_impossible_arguments(n: int, discordant: float, delta: float) -> None:
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_power(n, discordant, delta)


def test_compare_counts_won_and_lost() -> None:
    row = [True, True, False, False, True, True, False]
    other = [True, False, True, False, False, False, False]
    c = compare(row, other, "unpatched", seed=1)
    assert (c.against, c.won, c.lost) == ("unpatched", 3, 1)
    assert c.difference == pytest.approx((4 - 2) / 7)
    assert c.p_value == pytest.approx(mcnemar_exact(3, 1))
    assert c.ci_low <= c.difference <= c.ci_high
    assert (c.ci_low, c.ci_high) == paired_bootstrap(row, other, seed=1)
    back = compare(other, row, "pack", seed=1)
    assert (back.won, back.lost, back.p_value) == (1, 3, c.p_value)
    assert back.difference == pytest.approx(-c.difference)


def test_compare_of_one_problem_has_no_interval() -> None:
    c = compare([True], [False], "unpatched")
    assert (c.won, c.lost, c.difference, c.p_value) == (1, 0, 1.0, 1.0)
    assert (c.ci_low, c.ci_high) == (None, None)


def test_compare_refuses_rows_of_different_problems() -> None:
    with pytest.raises(ValueError, match="different problems"):
        compare([True, False], [True], "x")
