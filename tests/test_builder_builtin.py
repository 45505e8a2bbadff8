"""Every builtin problem is re-solved from its text, and every arithmetic step is re-checked."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from l2v_hub.builder.builtin_pairs import BuiltinProblem, builtin_problems

PROBLEMS = builtin_problems()
_STEP = re.compile(r"(\d+(?:\s*[×÷+−]\s*\d+)+)\s*=\s*(\d+)(?:\s+remainder\s+(\d+))?")
_UNIT = {"minutes": 60, "seconds": 60, "metres": 1000, "grams": 1000, "millilitres": 1000,
         "centimetres": 100}


def _nums(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", text)]


def _evaluate(expression: str) -> Fraction:
    """Left-to-right with × and ÷ before + and −, on exact fractions."""
    tokens = re.findall(r"\d+|[×÷+−]", expression)
    terms: list[Fraction] = [Fraction(int(tokens[0]))]
    ops: list[str] = []
    for op, num in zip(tokens[1::2], tokens[2::2], strict=True):
        if op == "×":
            terms[-1] *= int(num)
        elif op == "÷":
            terms[-1] /= int(num)
        else:
            ops.append(op)
            terms.append(Fraction(int(num)))
    total = terms[0]
    for op, term in zip(ops, terms[1:], strict=True):
        total = total + term if op == "+" else total - term
    return total


def _solve(p: BuiltinProblem) -> str:
    n, text = _nums(p.problem), p.problem
    if p.kind == "shopping":
        count, price, bill = n
        return f"${bill - count * price}"
    if p.kind == "boxes":
        total, per = n
        return f"{total // per} full boxes and {total % per} cookies left over"
    if p.kind == "convert":
        whole, extra = n
        small = re.search(r"How many (\w+)", text).group(1)
        return f"{whole * _UNIT[small] + extra} {small}"
    if p.kind == "speed":
        distance, hours, later = n
        return f"{distance * later // hours} km"
    if p.kind == "tank":
        volume, start, rate = n
        return f"{(volume - start) // rate} minutes"
    if p.kind == "discount":
        price, percent = n
        return f"${price - price * percent // 100}"
    if p.kind == "ages":
        gap, years, future = n
        return f"{future - years + gap} years old"
    if p.kind == "order":
        above: set[tuple[str, str]] = set()  # (taller, shorter)
        for x, rel, y in re.findall(r"([A-Z][a-z]+) is (taller|shorter) than ([A-Z][a-z]+)", text):
            above.add((x, y) if rel == "taller" else (y, x))
        names = {name for pair in above for name in pair}
        if "tallest" in text:
            (top,) = [x for x in names if all(pair[1] != x for pair in above)]
            return top
        (bottom,) = [x for x in names if all(pair[0] != x for pair in above)]
        return bottom
    if p.kind == "parity":
        a, b = n
        return "even" if (a + b) % 2 == 0 else "odd"
    if p.kind == "legs":
        hens, cows, spiders = n
        return f"{2 * hens + 4 * cows + 8 * spiders} legs"
    if p.kind == "boiling":
        _, start, rate = n
        return f"{(100 - start) // rate} minutes"
    if p.kind == "garden":
        length, width, cover = n
        return f"{length * width // cover} bags"
    raise AssertionError(f"no solver for kind {p.kind}")


def test_at_least_200_distinct_problems_of_every_kind() -> None:
    assert len(PROBLEMS) >= 200
    assert len({p.problem for p in PROBLEMS}) == len(PROBLEMS)
    assert len({p.kind for p in PROBLEMS}) >= 10


def test_generation_is_deterministic() -> None:
    assert builtin_problems() == PROBLEMS


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.problem[:40])
def test_stated_answer_is_right(problem: BuiltinProblem) -> None:
    assert problem.answer == _solve(problem)
    assert problem.cot.endswith(f"So the answer is {problem.answer}.")
    assert problem.direct.lower() == f"{problem.answer}.".lower()


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.problem[:40])
def test_every_arithmetic_step_is_right(problem: BuiltinProblem) -> None:
    steps = _STEP.findall(problem.cot)
    assert steps or problem.kind == "order"
    for expression, result, remainder in steps:
        if remainder:
            a, b = _nums(expression)
            assert (a // b, a % b) == (int(result), int(remainder)), expression
        else:
            assert _evaluate(expression) == int(result), f"{expression} = {result}"


def test_the_checker_catches_a_wrong_step() -> None:
    assert _evaluate("6 × 3") == 18 and _evaluate("20 − 18") != 3
    assert _evaluate("2 + 3 × 4") == 14 and _evaluate("560 × 25 ÷ 100") == 140
