"""The builtin contrastive problems, written for l2v-hub: small word problems with a worked solution.

Every problem comes from a template filled by a seeded generator, so the set is identical on every
machine and its sha256 is stable. Each solution states its arithmetic as ``a op b = c`` steps and ends
with ``So the answer is <answer>.``; the direct reply is the bare answer. tests/test_builder_builtin
re-solves every problem from its text and re-checks every step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BuiltinProblem", "builtin_problems"]

_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara",
)
_ITEMS = ("notebook", "pencil", "apple", "ticket", "sticker", "candle", "mug", "plant")
_PER_TEMPLATE = 24


@dataclass(frozen=True)
class BuiltinProblem:
    """One builtin problem: its template ``kind``, the text, the worked steps and the answer."""

    kind: str
    problem: str
    steps: tuple[str, ...]
    answer: str

    @property
    def cot(self) -> str:
        lines = [f"{i}. {step}" for i, step in enumerate(self.steps, 1)]
        return "\n".join(["Let's work through it step by step.", *lines,
                          f"So the answer is {self.answer}."])

    @property
    def direct(self) -> str:
        return f"{self.answer[:1].upper()}{self.answer[1:]}."


Template = Callable[[random.Random], BuiltinProblem]


def _shopping(r: random.Random) -> BuiltinProblem:
    name, item = r.choice(_NAMES), r.choice(_ITEMS)
    count, price = r.randint(2, 9), r.randint(2, 12)
    cost = count * price
    bill = next(b for b in (20, 50, 100, 200) if b > cost)
    return BuiltinProblem(
        "shopping",
        f"{name} buys {count} {item}s at ${price} each and pays with a ${bill} bill. "
        "How much change does the shop give back?",
        (f"The {item}s cost {count} × {price} = {cost} dollars.",
         f"The change is {bill} − {cost} = {bill - cost} dollars."),
        f"${bill - cost}",
    )


def _boxes(r: random.Random) -> BuiltinProblem:
    per = r.randint(4, 12)
    full, left = r.randint(3, 15), r.randint(1, per - 1)
    total = per * full + left
    return BuiltinProblem(
        "boxes",
        f"A bakery packs {total} cookies into boxes of {per}. How many boxes can be filled, "
        "and how many cookies are left over?",
        (f"Divide the cookies by the box size: {total} ÷ {per} = {full} remainder {left}.",
         f"Check: {full} × {per} = {full * per}, and {full * per} + {left} = {total}."),
        f"{full} full boxes and {left} cookies left over",
    )


_UNITS = (("hours", "minutes", 60), ("minutes", "seconds", 60), ("kilometres", "metres", 1000),
          ("kilograms", "grams", 1000), ("litres", "millilitres", 1000), ("metres", "centimetres", 100))


def _convert(r: random.Random) -> BuiltinProblem:
    big, small, factor = r.choice(_UNITS)
    whole, extra = r.randint(2, 9), r.randint(1, factor - 1)
    return BuiltinProblem(
        "convert",
        f"How many {small} are there in {whole} {big} and {extra} {small}?",
        (f"One of the {big} is {factor} {small}, so {whole} × {factor} = {whole * factor} {small}.",
         f"Add the rest: {whole * factor} + {extra} = {whole * factor + extra} {small}."),
        f"{whole * factor + extra} {small}",
    )


def _speed(r: random.Random) -> BuiltinProblem:
    speed, hours, later = r.randint(4, 24) * 5, r.randint(2, 6), r.randint(2, 9)
    distance = speed * hours
    return BuiltinProblem(
        "speed",
        f"A train covers {distance} km in {hours} hours at a steady speed. How far does it go in "
        f"{later} hours at the same speed?",
        (f"Its speed is {distance} ÷ {hours} = {speed} km per hour.",
         f"In {later} hours it covers {speed} × {later} = {speed * later} km."),
        f"{speed * later} km",
    )


def _tank(r: random.Random) -> BuiltinProblem:
    rate, minutes = r.randint(3, 15), r.randint(4, 20)
    volume = rate * minutes
    start = r.randint(1, minutes - 1) * rate
    need = volume - start
    steps = (f"The tank still needs {volume} − {start} = {need} litres.",
             f"At {rate} litres per minute that takes {need} ÷ {rate} = {need // rate} minutes.")
    return BuiltinProblem(
        "tank",
        f"A {volume}-litre tank already holds {start} litres. A tap adds {rate} litres per minute. "
        "How many minutes until the tank is full?",
        steps,
        f"{need // rate} minutes",
    )


def _discount(r: random.Random) -> BuiltinProblem:
    price, percent = r.randint(2, 30) * 20, r.choice((10, 20, 25, 50, 75))
    off = price * percent // 100
    return BuiltinProblem(
        "discount",
        f"A jacket costs ${price}. The shop takes {percent}% off the price. What does the jacket "
        "cost now?",
        (f"The discount is {price} × {percent} ÷ 100 = {off} dollars.",
         f"The new price is {price} − {off} = {price - off} dollars."),
        f"${price - off}",
    )


def _ages(r: random.Random) -> BuiltinProblem:
    a, b = r.sample(_NAMES, 2)
    gap, years, future = r.randint(2, 9), r.randint(2, 10), r.randint(15, 40)
    now_b = future - years
    return BuiltinProblem(
        "ages",
        f"{a} is {gap} years older than {b}. In {years} years {b} will be {future}. "
        f"How old is {a} now?",
        (f"{b} is now {future} − {years} = {now_b} years old.",
         f"{a} is {now_b} + {gap} = {now_b + gap} years old."),
        f"{now_b + gap} years old",
    )


def _order(r: random.Random) -> BuiltinProblem:
    tall, mid, short = r.sample(_NAMES, 3)
    ask_tallest = r.random() < 0.5
    answer = tall if ask_tallest else short
    return BuiltinProblem(
        "order",
        f"{tall} is taller than {mid}. {short} is shorter than {mid}. Who is the "
        f"{'tallest' if ask_tallest else 'shortest'} of the three?",
        (f"{tall} is taller than {mid}, and {mid} is taller than {short}.",
         f"So from tallest to shortest the order is {tall}, {mid}, {short}."),
        answer,
    )


def _parity(r: random.Random) -> BuiltinProblem:
    a, b = r.randint(100, 999), r.randint(100, 999)
    total = a + b
    kind = "even" if total % 2 == 0 else "odd"
    return BuiltinProblem(
        "parity",
        f"Is the sum of {a} and {b} even or odd?",
        (f"Add them: {a} + {b} = {total}.",
         f"{total} ends in {total % 10}, so it is {kind}."),
        kind,
    )


def _legs(r: random.Random) -> BuiltinProblem:
    hens, cows, spiders = r.randint(2, 20), r.randint(1, 12), r.randint(1, 6)
    return BuiltinProblem(
        "legs",
        f"A barn holds {hens} hens, {cows} cows and {spiders} spiders. How many legs are there "
        "in total?",
        (f"Hens have 2 legs: {hens} × 2 = {hens * 2}.",
         f"Cows have 4 legs: {cows} × 4 = {cows * 4}.",
         f"Spiders have 8 legs: {spiders} × 8 = {spiders * 8}.",
         f"Altogether {hens * 2} + {cows * 4} + {spiders * 8} = "
         f"{hens * 2 + cows * 4 + spiders * 8}."),
        f"{hens * 2 + cows * 4 + spiders * 8} legs",
    )


def _boiling(r: random.Random) -> BuiltinProblem:
    rate, minutes = r.randint(2, 9), r.randint(3, 12)
    start = 100 - rate * minutes
    return BuiltinProblem(
        "boiling",
        f"Water boils at 100 °C at sea level. A pot of water at {start} °C warms by {rate} °C each "
        "minute. How many minutes until it boils?",
        (f"It must warm by 100 − {start} = {100 - start} degrees.",
         f"At {rate} degrees per minute that takes {100 - start} ÷ {rate} = {minutes} minutes."),
        f"{minutes} minutes",
    )


def _garden(r: random.Random) -> BuiltinProblem:
    cover = r.choice((2, 4, 5, 10))
    length, width = r.randint(4, 30), cover * r.randint(1, 4)
    area = length * width
    return BuiltinProblem(
        "garden",
        f"A rectangular garden is {length} m long and {width} m wide. A bag of seed covers "
        f"{cover} square metres. How many bags are needed for the whole garden?",
        (f"The area is {length} × {width} = {area} square metres.",
         f"The bags needed are {area} ÷ {cover} = {area // cover}."),
        f"{area // cover} bags",
    )


_TEMPLATES: tuple[Template, ...] = (
    _shopping, _boxes, _convert, _speed, _tank, _discount, _ages, _order, _parity, _legs,
    _boiling, _garden,
)


def builtin_problems() -> list[BuiltinProblem]:
    """All builtin problems (288, in a fixed order), each distinct."""
    rng = random.Random(20251122)
    seen: set[str] = set()
    out: list[BuiltinProblem] = []
    for template in _TEMPLATES:
        made = 0
        while made < _PER_TEMPLATE:
            problem = template(rng)
            if problem.problem not in seen:
                seen.add(problem.problem)
                out.append(problem)
                made += 1
    return out
