"""Generate image problems for `l2v-hub eval`: rendered numbers, shapes to count, bar charts to read.

    python -m l2v_hub.demo.image_problems OUT_DIR [--count N] [--seed S] [--size PX]

writes OUT_DIR/images/image-0001.png, ... and OUT_DIR/problems.jsonl, whose rows name their image
by a path relative to the JSONL file. Five kinds take turns, so any five consecutive rows hold one
of each: ``read_number`` (a number drawn large), ``sum_numbers`` (two numbers to add),
``count_shapes`` (circles, squares or triangles to count among other shapes, none overlapping),
``bar_value`` and ``bar_difference`` (a bar chart of bars A-E with a value axis, gridlines and the
values printed above the bars). One row in six is multiple choice. Each row has a ``solution``
expression (integers and ``+ - * // ( )``) whose value is the answer (for a choice row, the value
of the right choice).

Deterministic: row ``i`` depends only on the seed, ``i`` and the size (one ``random.Random`` per
row), so the first five rows of a large set equal a five-row set. Uses Pillow's bundled font
(``ImageFont.load_default(size=...)``), so nothing outside Pillow is needed.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["KINDS", "make_image_problems"]

KINDS = ("read_number", "sum_numbers", "count_shapes", "bar_value", "bar_difference")
LETTERS = "ABCDE"
MIN_SIZE = 128  # below this the chart's labels no longer fit
INK = ((20, 20, 20), (30, 60, 150), (140, 30, 30), (20, 100, 50), (90, 40, 120))
PAPER = ((255, 255, 255), (250, 247, 238), (240, 245, 250), (245, 250, 240))
SHAPE_COLOURS = ((220, 50, 50), (40, 110, 220), (40, 160, 70), (240, 170, 20), (150, 60, 180))
SHAPES = ("circle", "square", "triangle")


@dataclass
class Item:
    """One problem before it is written: its picture, question, solution and answer."""

    image: Image.Image
    question: str
    solution: str
    answer: int
    slips: list[int] = field(default_factory=list)


def _font(px: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(8, round(px)))


def _text_at(draw: ImageDraw.ImageDraw, r: random.Random, text: str, font, box, fill) -> None:
    """Draw ``text`` at a random place whose bounding box lies inside ``box`` (x0, y0, x1, y1)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x0, y0, x1, y1 = box
    x = r.randint(x0 - left, max(x0 - left, x1 - right))
    y = r.randint(y0 - top, max(y0 - top, y1 - bottom))
    draw.text((x, y), text, font=font, fill=fill)


def read_number(r: random.Random, size: int) -> Item:
    image = Image.new("RGB", (size, size), r.choice(PAPER))
    draw = ImageDraw.Draw(image)
    n = r.randint(10, 9999)
    margin = size // 12
    _text_at(draw, r, str(n), _font(size * r.uniform(0.18, 0.26)),
             (margin, margin, size - margin, size - margin), r.choice(INK))
    digits = str(n)
    swapped = int(digits[1] + digits[0] + digits[2:])
    return Item(image, "What number is written in the image?", str(n), n,
                [swapped, n // 10, n + 1, n * 10 if n < 1000 else n - 1])


def sum_numbers(r: random.Random, size: int) -> Item:
    image = Image.new("RGB", (size, size), r.choice(PAPER))
    draw = ImageDraw.Draw(image)
    a, b = r.randint(2, 499), r.randint(2, 499)
    font = _font(size * r.uniform(0.13, 0.18))
    margin, half = size // 12, size // 2
    ink_a, ink_b = r.sample(INK, 2)
    # One number in the top half and one in the bottom half, so they never touch.
    _text_at(draw, r, str(a), font, (margin, margin, size - margin, half - margin // 2), ink_a)
    _text_at(draw, r, str(b), font, (margin, half + margin // 2, size - margin, size - margin),
             ink_b)
    return Item(image, "What is the sum of the two numbers in the image?", f"{a} + {b}", a + b,
                [abs(a - b), a + b + 10, a + b - 10, a + b + 1])


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x: int, y: int, radius: int, fill) -> None:
    if shape == "circle":
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill)
    elif shape == "square":
        side = round(radius * 0.7)  # corners inside the bounding circle
        draw.rectangle((x - side, y - side, x + side, y + side), fill=fill)
    else:  # equilateral, inscribed in the bounding circle
        half, low = round(radius * 0.866), y + round(radius * 0.5)
        draw.polygon(((x, y - radius), (x - half, low), (x + half, low)), fill=fill)


def count_shapes(r: random.Random, size: int) -> Item:
    target = r.choice(SHAPES)
    others = [s for s in SHAPES if s != target]
    count = r.randint(1, 9)
    kinds = [target] * count + [r.choice(others) for _ in range(r.randint(0, 6))]
    r.shuffle(kinds)
    low, high = max(6, size // 22), max(8, size // 14)
    while True:  # place every shape; start again in the rare case one does not fit
        placed: list[tuple[int, int, int]] = []
        for _ in kinds:
            radius = r.randint(low, high)
            for _attempt in range(200):
                x = r.randint(radius + 4, size - radius - 4)
                y = r.randint(radius + 4, size - radius - 4)
                # Bounding circles at least 6 px apart: no two shapes overlap or touch.
                if all((x - px) ** 2 + (y - py) ** 2 > (radius + pr + 6) ** 2
                       for px, py, pr in placed):
                    placed.append((x, y, radius))
                    break
            else:
                break
        if len(placed) == len(kinds):
            break
    image = Image.new("RGB", (size, size), r.choice(PAPER))
    draw = ImageDraw.Draw(image)
    for shape, (x, y, radius) in zip(kinds, placed, strict=True):
        _draw_shape(draw, shape, x, y, radius, r.choice(SHAPE_COLOURS))
    return Item(image, f"How many {target}s are in the image?", str(count), count,
                [len(kinds), count + 1, count - 1, count + 2])


def _bar_chart(r: random.Random, size: int) -> tuple[Image.Image, dict[str, int]]:
    """Bars A-E with distinct values 5..95 on a 0-100 axis, gridlines every 10, values printed."""
    values = dict(zip(LETTERS, r.sample(range(5, 96), 5), strict=True))
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    small = _font(size * 0.04)
    # The value axis's labels ("100" the widest) fit left of the axis.
    left = max(round(size * 0.14), round(draw.textlength("100", font=small)) + 10)
    right, top, bottom = round(size * 0.96), round(size * 0.1), round(size * 0.86)
    scale = (bottom - top) / 100
    for tick in range(0, 101, 10):
        y = round(bottom - tick * scale)
        draw.line((left, y, right, y), fill=(215, 215, 215), width=1)
        draw.text((left - 6, y), str(tick), font=small, fill=(60, 60, 60), anchor="rm")
    draw.line((left, top, left, bottom), fill=(0, 0, 0), width=2)
    draw.line((left, bottom, right, bottom), fill=(0, 0, 0), width=2)
    slot = (right - left) / len(values)
    colour = r.choice(SHAPE_COLOURS)
    label = _font(size * 0.05)
    for i, (name, value) in enumerate(values.items()):
        x0, x1 = round(left + slot * (i + 0.2)), round(left + slot * (i + 0.8))
        y = round(bottom - value * scale)
        draw.rectangle((x0, y, x1, bottom - 1), fill=colour)
        centre = (x0 + x1) // 2
        draw.text((centre, y - 3), str(value), font=small, fill=(0, 0, 0), anchor="mb")
        draw.text((centre, bottom + 4), name, font=label, fill=(0, 0, 0), anchor="mt")
    return image, values


def bar_value(r: random.Random, size: int) -> Item:
    image, values = _bar_chart(r, size)
    bar = r.choice(LETTERS)
    value = values[bar]
    return Item(image, f"What is the value of bar {bar}?", str(value), value,
                [v for k, v in values.items() if k != bar])


def bar_difference(r: random.Random, size: int) -> Item:
    image, values = _bar_chart(r, size)
    big, small = sorted(r.sample(LETTERS, 2), key=values.__getitem__, reverse=True)
    diff = values[big] - values[small]
    return Item(image, f"How much larger is bar {big} than bar {small}?",
                f"{values[big]} - {values[small]}", diff,
                [values[big] + values[small], values[big], diff + 10, diff - 10])


MAKERS: dict[str, Callable[[random.Random, int], Item]] = {
    "read_number": read_number, "sum_numbers": sum_numbers, "count_shapes": count_shapes,
    "bar_value": bar_value, "bar_difference": bar_difference,
}


def _choices(item: Item, r: random.Random) -> tuple[list[str], str]:
    """Four numbers, the answer among three slips or near misses, shuffled; the answer's letter."""
    wrong: list[int] = []
    for value in (*item.slips, item.answer + 3, item.answer + 5):
        if value >= 0 and value != item.answer and value not in wrong:
            wrong.append(value)
    options = [item.answer, *wrong[:3]]
    r.shuffle(options)
    return [str(v) for v in options], LETTERS[options.index(item.answer)]


def make_image_problems(out_dir: str | Path, count: int = 100, seed: int = 0,
                        size: int = 384) -> Path:
    """Write ``count`` problems (PNGs under ``out_dir/images``) and ``out_dir/problems.jsonl``;
    returns the JSONL path."""
    if count < 1 or size < MIN_SIZE:
        raise ValueError(f"count must be >= 1 and size >= {MIN_SIZE}, got {count} and {size}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        r = random.Random(f"l2v-hub-images/{seed}/{size}/{i}")
        item = MAKERS[kind](r, size)
        name = f"image-{i + 1:04d}"
        image = f"images/{name}.png"
        item.image.save(out / image, format="PNG")
        row: dict = {"id": name, "kind": kind, "question": item.question, "image": image}
        if i % 6 == 3:
            row["choices"], row["answer"] = _choices(item, r)
        else:
            row["answer"] = item.answer
        row["solution"] = item.solution
        lines.append(json.dumps(row) + "\n")
    path = out / "problems.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--count", type=int, default=100, help="problems to write (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=384,
                        help=f"image width and height in pixels (default 384, at least {MIN_SIZE})")
    args = parser.parse_args()
    try:
        path = make_image_problems(args.out_dir, args.count, args.seed, args.size)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {args.count} problems to {path}")


if __name__ == "__main__":
    main()
