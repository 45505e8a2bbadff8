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


def _order(text: str) -> str:
    above: set[tuple[str, str]] = set()  # (taller, shorter)
    for x, rel, y in re.findall(r"([A-Z][a-z]+) is (taller|shorter) than ([A-Z][a-z]+)", text):
        above.add((x, y) if rel == "taller" else (y, x))
    names = {name for pair in above for name in pair}
    side = 1 if "tallest" in text else 0  # the tallest is never the shorter one of a pair
    (answer,) = [x for x in names if all(pair[side] != x for pair in above)]
    return answer


def _convert(n: list[int], text: str) -> str:
    small = re.search(r"How many (\w+)", text).group(1)
    return f"{n[0] * _UNIT[small] + n[1]} {small}"


# One independent solver per template, reading the numbers from the problem text in order.
_SOLVERS = {
    "shopping": lambda n, _: f"${n[2] - n[0] * n[1]}",
    "boxes": lambda n, _: f"{n[0] // n[1]} full boxes and {n[0] % n[1]} cookies left over",
    "convert": _convert,
    "speed": lambda n, _: f"{n[0] * n[2] // n[1]} km",
    "tank": lambda n, _: f"{(n[0] - n[1]) // n[2]} minutes",
    "discount": lambda n, _: f"${n[0] - n[0] * n[1] // 100}",
    "ages": lambda n, _: f"{n[2] - n[1] + n[0]} years old",
    "order": lambda _, text: _order(text),
    "parity": lambda n, _: "even" if (n[0] + n[1]) % 2 == 0 else "odd",
    "legs": lambda n, _: f"{2 * n[0] + 4 * n[1] + 8 * n[2]} legs",
    "boiling": lambda n, _: f"{(100 - n[1]) // n[2]} minutes",
    "garden": lambda n, _: f"{n[0] * n[1] // n[2]} bags",
}


def _solve(p: BuiltinProblem) -> str:
    return _SOLVERS[p.kind](_nums(p.problem), p.problem)


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
