"""Generate l2v_hub/data/heldout.jsonl: the held-out word problems that `l2v-hub eval` measures on.

Grade-school problems of twelve template families, each needing two to four operations, so that a
small model answering with only the final number often misses while a worked answer can succeed.
The templates, names and phrasing are written for this set alone: none is shared with the builtin
contrastive pairs (l2v_hub/builder/builtin_pairs.py) or l2v_hub/data/problems.jsonl, which
tests/test_problem_data.py checks. Every row carries a ``solution``: an integer expression (only
``+ - * // ( )``) whose value is the answer, so each answer can be re-checked on its own. About one
row in six is multiple choice: four numbers, the right one and distractors from typical slips.

Deterministic (one seeded ``random.Random``): run ``python scripts/make_heldout.py`` to regenerate
the committed file, ``--out PATH`` to write elsewhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SEED = 20260311
PER_KIND = 50
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "l2v_hub" / "data" / "heldout.jsonl"
LETTERS = "ABCDE"
MAX_NUMBER = 1000  # no number in a question above this
MAX_ANSWER = 2000

# Names used by neither the builtin pairs nor problems.jsonl.
NAMES = (
    "Bruno", "Celia", "Dario", "Esme", "Felix", "Greta", "Hamid", "Iris", "Joel", "Kofi", "Lena",
    "Marco", "Nadia", "Oscar", "Paula", "Rami", "Sofia", "Theo", "Uma", "Vera", "Wes", "Yusuf",
    "Zoe", "Anouk",
)


@dataclass(frozen=True)
class Draft:
    """One filled template: the question, its solution expression, its answer (computed apart
    from the expression, and checked against it) and wrong answers from typical slips."""

    question: str
    solution: str
    answer: int
    slips: tuple[int, ...] = ()


class Retry(Exception):
    """The drawn numbers do not fit the template (not divisible, negative, too large)."""


Template = Callable[[random.Random], Draft]

_OPS = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__,
        ast.FloorDiv: int.__floordiv__}


def evaluate(expression: str) -> int:
    """The value of an integer expression of ``+ - * //`` and parentheses; anything else raises."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"not an allowed expression: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval").body)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _two_names(r: random.Random) -> tuple[str, str]:
    a, b = r.sample(NAMES, 2)
    return a, b


# --- the twelve families ----------------------------------------------------------------------

_GOODS = ("melons", "jars of honey", "bags of rice", "cartons of milk", "loaves of bread",
          "boxes of tea", "bunches of grapes", "tins of beans")


def change(r: random.Random) -> Draft:
    """Shopping: two kinds of goods, a payment, the change."""
    a, b = r.randint(2, 6), r.randint(2, 6)
    pa, pb = r.randint(2, 15), r.randint(2, 15)
    cost = a * pa + b * pb
    if r.random() < 0.5:
        name = r.choice(NAMES)
        g1, g2 = r.sample(_GOODS, 2)
        paid = next(p for p in (50, 100, 200) if p > cost)
        question = (f"At the market {name} picks up {a} {g1} at {pa} dollars apiece and {b} {g2} "
                    f"at {pb} dollars apiece, then hands over {paid} dollars. How many dollars "
                    f"does {name} get back?")
        solution = f"{paid} - ({a} * {pa} + {b} * {pb})"
    else:
        notes = cost // 20 + 1
        paid = notes * 20
        question = (f"A school club orders {a} pizzas costing {pa} dollars each and {b} bottles "
                    f"of juice costing {pb} dollars each. The club pays with {notes} twenty-dollar "
                    "notes. How much change, in dollars, should the club receive?")
        solution = f"{notes} * 20 - ({a} * {pa} + {b} * {pb})"
    return Draft(question, solution, paid - cost,
                 (cost, paid - a * pa, paid - a * pa - pb, paid - cost + 10))


def ages(r: random.Random) -> Draft:
    """Ages: a multiple, a sum of three ages, or an age at a birth."""
    a, b, c = r.sample(NAMES, 3)
    variant = r.randrange(3)
    if variant == 0:
        k, young, later = r.randint(2, 5), r.randint(3, 14), r.randint(2, 12)
        question = (f"{a}'s grandmother is {k} times as old as {a}, who is {young}. How old will "
                    f"the grandmother be {later} years from now?")
        return Draft(question, f"{k} * {young} + {later}", k * young + later,
                     (k * (young + later), k * young, young + later))
    if variant == 1:
        old, gap, third = r.randint(20, 60), r.randint(2, 15), r.randint(5, 60)
        total = old + (old - gap) + third
        question = (f"The ages of {a}, {b} and {c} add up to {total}. {a} is {old}, and {b} is "
                    f"{gap} years younger than {a}. How old is {c}?")
        return Draft(question, f"{total} - {old} - ({old} - {gap})", third,
                     (total - old - gap, total - old, total - 2 * old))
    at_birth, now, later = r.randint(20, 40), r.randint(2, 30), r.randint(2, 15)
    question = (f"{a} was {at_birth} years old when {b} was born. {b} is {now} today. How old "
                f"will {a} be in {later} years' time?")
    return Draft(question, f"{at_birth} + {now} + {later}", at_birth + now + later,
                 (at_birth + later, at_birth + now, now + later))


def rate_time(r: random.Random) -> Draft:
    """Rates and time: a printer, a two-leg ride, two pumps working together."""
    variant = r.randrange(3)
    if variant == 0:
        per_min, minutes = r.randint(4, 25), r.randint(3, 30)
        pages = per_min * minutes
        sizes = [n for n in range(6, 61) if pages % n == 0 and pages // n >= 2]
        if not sizes:
            raise Retry
        size = r.choice(sizes)
        copies = pages // size
        question = (f"A printer turns out {per_min} pages every minute. How many minutes does it "
                    f"need for {copies} copies of a {size}-page handbook?")
        return Draft(question, f"{copies} * {size} // {per_min}", minutes,
                     (pages, size // per_min + copies, minutes + 1))
    if variant == 1:
        h1, s1, h2, s2 = r.randint(2, 5), r.randint(8, 25), r.randint(2, 5), r.randint(8, 25)
        question = (f"A cyclist rides for {h1} hours at {s1} km an hour, stops for lunch, and "
                    f"then rides {h2} more hours at {s2} km an hour. How many kilometres does the "
                    "cyclist cover in all?")
        return Draft(question, f"{h1} * {s1} + {h2} * {s2}", h1 * s1 + h2 * s2,
                     (h1 * s1 + s2, (h1 + h2) * s1, s1 + s2))
    a, b, minutes = r.randint(5, 30), r.randint(5, 30), r.randint(4, 20)
    volume = (a + b) * minutes
    question = (f"Two pumps empty a flooded cellar holding {volume} litres of water. One pumps "
                f"{a} litres a minute and the other {b} litres a minute. Running together, how "
                "many minutes do they take?")
    return Draft(question, f"{volume} // ({a} + {b})", minutes,
                 (volume // a if volume % a == 0 else minutes * 2, minutes * 2, minutes + 1))


def leftover(r: random.Random) -> Draft:
    """Items remaining after several steps: arrivals and departures, or a fraction sold."""
    if r.random() < 0.5:
        start, out1, arrive, out2 = (r.randint(200, 900), r.randint(20, 150), r.randint(20, 150),
                                     r.randint(20, 150))
        left = start - out1 + arrive - out2
        question = (f"A warehouse holds {start} crates. On Monday {out1} crates are shipped out, "
                    f"on Tuesday {arrive} new crates arrive, and on Wednesday {out2} are shipped "
                    "out. How many crates are in the warehouse at the end of Wednesday?")
        return Draft(question, f"{start} - {out1} + {arrive} - {out2}", left,
                     (start - out1 - arrive - out2, start - out1 - out2, left + 10))
    name = r.choice(NAMES)
    part, word = r.choice(((2, "half"), (3, "a third"), (4, "a quarter"), (5, "a fifth")))
    picked = part * r.randint(12, 60)
    given = r.randint(5, picked - picked // part - 1)
    fruit = r.choice(("peaches", "plums", "pears", "apricots"))
    question = (f"{name} harvests {picked} {fruit}, sells {word} of them at a roadside stall and "
                f"gives {given} to the neighbours. How many {fruit} does {name} keep?")
    left = picked - picked // part - given
    return Draft(question, f"{picked} - {picked} // {part} - {given}", left,
                 (picked - given, picked // part - given if picked // part > given else left + 1,
                  picked - picked // part))


def remainder(r: random.Random) -> Draft:
    """Sharing equally: what is left over, vehicles needed (rounding up), full cartons sold."""
    variant = r.randrange(3)
    if variant == 0:
        k = r.randint(3, 15)
        n = k * r.randint(4, 40) + r.randint(1, k - 1)
        thing = r.choice(("crayons", "beads", "seeds", "buttons"))
        question = (f"A teacher deals out {n} {thing} to {k} tables, the same number to every "
                    f"table and as many as possible. How many {thing} are left undealt?")
        return Draft(question, f"{n} - {n} // {k} * {k}", n % k,
                     (n // k, k - n % k, n // k + 1))
    if variant == 1:
        seats = r.randint(6, 20)
        people = seats * r.randint(3, 25) + r.randint(1, seats - 1)
        question = (f"{people} supporters are travelling to a match in minibuses that seat "
                    f"{seats} each. How many minibuses are needed so that everyone gets a seat?")
        return Draft(question, f"({people} + {seats} - 1) // {seats}", -(-people // seats),
                     (people // seats, people // seats + 2, people % seats))
    name = r.choice(NAMES)
    k, price = r.choice((6, 10, 12)), r.randint(2, 6)
    eggs = k * r.randint(5, 40) + r.randint(1, k - 1)
    question = (f"{name}'s hens laid {eggs} eggs this month. {name} packs them in cartons of {k} "
                f"and sells only full cartons, at {price} dollars a carton. How many dollars does "
                f"{name} take in?")
    return Draft(question, f"{eggs} // {k} * {price}", eggs // k * price,
                 ((eggs // k + 1) * price, eggs // k, eggs * price // k + price))


def units(r: random.Random) -> Draft:
    """Unit conversion with a second step: cutting, filling, running, repeated showings."""
    variant = r.randrange(4)
    if variant == 0:
        metres, piece = r.randint(2, 9), r.choice((5, 10, 20, 25, 50))
        question = (f"A roll of ribbon is {metres} metres long. It is cut into pieces "
                    f"{piece} centimetres long. How many pieces does the roll give?")
        return Draft(question, f"{metres} * 100 // {piece}", metres * 100 // piece,
                     (metres * 10 // piece if metres * 10 % piece == 0 else metres * 100,
                      metres * piece, metres * 100 // piece + 1))
    if variant == 1:
        jugs, litres, glass = r.randint(2, 6), r.randint(1, 4), r.choice((200, 250, 500))
        question = (f"Each jug holds {litres} litres of lemonade. How many {glass}-millilitre "
                    f"glasses can be filled from {jugs} full jugs?")
        return Draft(question, f"{jugs} * {litres} * 1000 // {glass}",
                     jugs * litres * 1000 // glass,
                     (litres * 1000 // glass, jugs * litres * 100 // glass + 1, jugs * litres))
    if variant == 2:
        track = r.choice((200, 250, 400, 500))
        laps, days = r.randint(2, 10), r.randint(2, 10)
        if laps * track * days % 1000:
            raise Retry
        question = (f"{r.choice(NAMES)} jogs {laps} laps of a {track}-metre track every day for "
                    f"{days} days. How many kilometres is that altogether?")
        return Draft(question, f"{laps} * {track} * {days} // 1000",
                     laps * track * days // 1000,
                     (laps * track // 1000 if laps * track % 1000 == 0 else laps * days,
                      laps * days, laps * track * days // 100))
    hours, minutes, shows = r.randint(1, 3), r.randint(5, 55), r.randint(2, 5)
    question = (f"A film runs for {hours} hours and {minutes} minutes. A cinema shows it "
                f"{shows} times in a row with no breaks. How many minutes is that in total?")
    return Draft(question, f"{shows} * ({hours} * 60 + {minutes})", shows * (hours * 60 + minutes),
                 (shows * hours * 60 + minutes, shows * (hours * 100 + minutes),
                  hours * 60 + minutes * shows))


def multiply_subtract(r: random.Random) -> Draft:
    """Two steps: a product, then something taken away."""
    variant = r.randrange(3)
    if variant == 0:
        rows, seats = r.randint(8, 30), r.randint(10, 30)
        taken = r.randint(1, rows * seats - 1)
        question = (f"A concert hall has {rows} rows of {seats} seats. {taken} tickets have been "
                    "sold, one for each seat. How many seats are still unsold?")
        a, b, c = rows, seats, taken
    elif variant == 1:
        rows, plants = r.randint(4, 20), r.randint(8, 25)
        eaten = r.randint(5, rows * plants // 2)
        question = (f"A gardener sets out {rows} rows of {plants} lettuces. Slugs ruin {eaten} "
                    "of them. How many lettuces are left to pick?")
        a, b, c = rows, plants, eaten
    else:
        classes, pupils = r.randint(4, 20), r.randint(18, 32)
        away = r.randint(10, classes * pupils // 3)
        question = (f"A school has {classes} classes of {pupils} pupils each. On Friday {away} "
                    "pupils are away on a museum visit. How many pupils are at school that day?")
        a, b, c = classes, pupils, away
    return Draft(question, f"{a} * {b} - {c}", a * b - c,
                 (a * b, a * b - c - 10, a * b + c, a * (b - c) if b > c else a * b - c + 10))


_CAFES = ("the corner café", "the station café", "the park kiosk", "the library café")


def how_many_more(r: random.Random) -> Draft:
    """Comparisons: how many more, after computing both sides."""
    variant = r.randrange(3)
    a, b = _two_names(r)
    if variant == 0:
        b1, c1, b2, c2 = r.randint(3, 12), r.randint(10, 30), r.randint(2, 12), r.randint(10, 30)
        if b1 * c1 <= b2 * c2:
            raise Retry
        question = (f"For a recycling drive {a} fills {b1} sacks with {c1} cans each, and {b} "
                    f"fills {b2} sacks with {c2} cans each. How many more cans does {a} collect "
                    f"than {b}?")
        return Draft(question, f"{b1} * {c1} - {b2} * {c2}", b1 * c1 - b2 * c2,
                     (b1 * c1 + b2 * c2, abs(c1 - c2), b1 * c1 - b2 * c2 + 10))
    if variant == 1:
        x, y = r.sample(_CAFES, 2)
        morning, afternoon, other = r.randint(40, 300), r.randint(40, 300), r.randint(40, 400)
        if morning + afternoon <= other:
            raise Retry
        question = (f"On Saturday {x} sold {morning} cups of tea before noon and {afternoon} "
                    f"after noon, while {y} sold {other} cups over the whole day. How many more "
                    f"cups did {x} sell than {y}?")
        diff = morning + afternoon - other
        return Draft(question, f"{morning} + {afternoon} - {other}", diff,
                     (abs(morning - other), morning + afternoon + other, diff + 10))
    k, money = r.randint(2, 9), r.randint(5, 120)
    question = (f"{a} has {money} dollars in a piggy bank. {b} has {k} times as much. How many "
                f"more dollars does {b} have than {a}?")
    return Draft(question, f"{k} * {money} - {money}", k * money - money,
                 (k * money, k * money + money, money))


def sequence(r: random.Random) -> Draft:
    """Sequences: the n-th term of a step pattern, rows of seats, a doubling colony."""
    variant = r.randrange(3)
    if variant < 2:
        first, step, n = r.randint(2, 40), r.randint(2, 15), r.randint(8, 30)
        if variant == 0:
            question = (f"A number pattern starts at {first}, and every term after the first is "
                        f"{step} more than the term before it. What is the {_ordinal(n)} term "
                        "of the pattern?")
        else:
            question = (f"In an open-air theatre the front row has {first} seats, and every row "
                        f"behind has {step} seats more than the row in front of it. How many "
                        f"seats are there in row {n}?")
        return Draft(question, f"{first} + ({n} - 1) * {step}", first + (n - 1) * step,
                     (first + n * step, first + (n - 2) * step, n * step))
    start, hours = r.randint(2, 30), r.randint(3, 6)
    if start * 2**hours > MAX_ANSWER:
        raise Retry
    question = (f"A dish in a lab holds {start} cells, and the number of cells doubles every "
                f"hour. How many cells are in the dish after {hours} hours?")
    return Draft(question, f"{start}" + " * 2" * hours, start * 2**hours,
                 (start * 2 * hours, start * 2 ** (hours - 1), start * 2 ** (hours + 1)))


def savings(r: random.Random) -> Draft:
    """Saving towards a goal: whole weeks needed, rounding up."""
    name = r.choice(NAMES)
    if r.random() < 0.5:
        cost, have, weekly = r.randint(80, 600), r.randint(5, 60), r.randint(5, 40)
        if have >= cost:
            raise Retry
        thing = r.choice(("a bicycle", "a guitar", "a tablet", "a tent", "a telescope"))
        question = (f"{name} wants {thing} that costs {cost} dollars. {name} already has {have} "
                    f"dollars and puts aside {weekly} dollars every week. After how many weeks "
                    f"will {name} have enough?")
        need = cost - have
        return Draft(question, f"({cost} - {have} + {weekly} - 1) // {weekly}",
                     -(-need // weekly),
                     (need // weekly, -(-cost // weekly), -(-need // weekly) + 1))
    earn, spend, goal = r.randint(10, 40), r.randint(2, 9), r.randint(60, 500)
    net = earn - spend
    question = (f"{name} earns {earn} dollars a week walking dogs and spends {spend} dollars of "
                f"it each week on snacks. How many weeks does it take {name} to save up "
                f"{goal} dollars?")
    return Draft(question, f"({goal} + ({earn} - {spend}) - 1) // ({earn} - {spend})",
                 -(-goal // net), (-(-goal // earn), goal // net, -(-goal // net) + 1))


def fence(r: random.Random) -> Draft:
    """Perimeters: fencing a pen, laps of a field, ribbon round square frames."""
    variant = r.randrange(3)
    if variant == 0:
        length, width, price = r.randint(5, 40), r.randint(3, 30), r.randint(2, 9)
        question = (f"A rectangular sheep pen measures {length} m by {width} m. Fencing costs "
                    f"{price} dollars a metre. How many dollars does it cost to fence the whole "
                    "way round the pen?")
        return Draft(question, f"2 * ({length} + {width}) * {price}",
                     2 * (length + width) * price,
                     ((length + width) * price, length * width * price, 2 * (length + width)))
    if variant == 1:
        length, width, laps = r.randint(20, 150), r.randint(10, 100), r.randint(2, 5)
        name = r.choice(NAMES)
        question = (f"{name} walks {laps} times around the edge of a rectangular field that is "
                    f"{length} m long and {width} m wide. How many metres does {name} walk?")
        return Draft(question, f"2 * ({length} + {width}) * {laps}",
                     2 * (length + width) * laps,
                     ((length + width) * laps, 2 * (length + width), length * width // 10))
    side, frames = r.randint(8, 60), r.randint(2, 9)
    question = (f"A square photo frame has sides of {side} cm. How many centimetres of trim "
                f"are needed to edge {frames} such frames?")
    return Draft(question, f"4 * {side} * {frames}", 4 * side * frames,
                 (side * frames, 4 * side, 2 * side * frames))


def average(r: random.Random) -> Draft:
    """Means: the missing quiz score, splitting a bill, weekly average sales."""
    variant = r.randrange(3)
    if variant == 0:
        name = r.choice(NAMES)
        scores = [r.randint(55, 100) for _ in range(3)]
        target = r.randint(60, 95)
        need = 4 * target - sum(scores)
        if not 0 <= need <= 100:
            raise Retry
        a, b, c = scores
        question = (f"{name} scored {a}, {b} and {c} on three quizzes. What score on a fourth "
                    f"quiz would give {name} an average of exactly {target} over all four?")
        return Draft(question, f"4 * {target} - ({a} + {b} + {c})", need,
                     (target, 4 * target, need + 4))
    if variant == 1:
        friends, each = r.randint(2, 8), r.randint(8, 60)
        total = friends * each
        food = r.randint(total // 3, total - 5)
        drinks = total - food
        question = (f"{friends} friends split a restaurant bill evenly. The food comes to {food} "
                    f"dollars and the drinks to {drinks} dollars. How many dollars does each "
                    "friend pay?")
        return Draft(question, f"({food} + {drinks}) // {friends}", each,
                     (food // friends + drinks if food % friends == 0 else total, total,
                      each + 1))
    weeks = [r.randint(10, 90) for _ in range(3)]
    last = r.randint(10, 90)
    last += (-(sum(weeks) + last)) % 4
    w1, w2, w3 = weeks
    question = (f"A bike shop sold {w1}, {w2}, {w3} and {last} bicycles in four weeks. What is "
                "the mean number of bicycles sold per week?")
    return Draft(question, f"({w1} + {w2} + {w3} + {last}) // 4", (sum(weeks) + last) // 4,
                 ((sum(weeks) + last) // 3 if (sum(weeks) + last) % 3 == 0 else sum(weeks) + last,
                  sum(weeks) + last, (w1 + last) // 2))


KINDS: dict[str, Template] = {
    "change": change, "ages": ages, "rate_time": rate_time, "leftover": leftover,
    "remainder": remainder, "units": units, "multiply_subtract": multiply_subtract,
    "how_many_more": how_many_more, "sequence": sequence, "savings": savings, "fence": fence,
    "average": average,
}


def _draft(template: Template, r: random.Random) -> Draft:
    """A filled template whose answer, expression and numbers pass every check."""
    while True:
        try:
            draft = template(r)
        except Retry:
            continue
        numbers = [int(n) for n in re.findall(r"\d+", draft.question)]
        if draft.answer < 0 or draft.answer > MAX_ANSWER or max(numbers) > MAX_NUMBER:
            continue
        if evaluate(draft.solution) != draft.answer:
            raise AssertionError(f"{template.__name__}: {draft.solution} != {draft.answer}")
        return draft


def _choices(draft: Draft, r: random.Random) -> tuple[list[str], str]:
    """Four numbers (the answer and three slips or near misses), shuffled; the answer's letter."""
    wrong: list[int] = []
    for value in (*draft.slips, draft.answer + 1, draft.answer - 1, draft.answer + 2,
                  draft.answer + 5, draft.answer + 10):
        if value >= 0 and value != draft.answer and value not in wrong:
            wrong.append(value)
    options = [draft.answer, *wrong[:3]]
    r.shuffle(options)
    return [str(v) for v in options], LETTERS[options.index(draft.answer)]


def heldout_rows(seed: int = SEED, per_kind: int = PER_KIND) -> list[dict]:
    """Every row in file order: kinds interleaved, so any prefix covers every kind; one row in
    six (staggered by kind) is multiple choice. Questions are unique."""
    r = random.Random(seed)
    seen: set[str] = set()
    rows: list[dict] = []
    for j in range(per_kind):
        for k, (kind, template) in enumerate(KINDS.items()):
            draft = _draft(template, r)
            while draft.question in seen:
                draft = _draft(template, r)
            seen.add(draft.question)
            row: dict = {"id": f"heldout-{len(rows) + 1:04d}", "kind": kind,
                         "question": draft.question}
            if (j + k) % 6 == 5:
                row["choices"], row["answer"] = _choices(draft, r)
            else:
                row["answer"] = draft.answer
            row["solution"] = draft.solution
            rows.append(row)
    return rows


def write_heldout(out: Path = DEFAULT_OUT, seed: int = SEED) -> Path:
    """Write the rows as JSONL to ``out``; returns ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in heldout_rows(seed))
    out.write_text(text, encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSONL file to write")
    args = parser.parse_args()
    path = write_heldout(args.out)
    print(f"wrote {sum(1 for _ in path.open(encoding='utf-8'))} problems to {path}")


if __name__ == "__main__":
    main()
