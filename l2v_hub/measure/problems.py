"""Problems with known answers: the builtin sets shipped in the package, or a JSONL file.

A JSONL row (docs/eval.md): ``question`` (text), ``answer`` (a number, or the letter of the right
choice), and optionally ``id``, ``kind``, ``choices`` (2 to 26 strings, shown as ``A. ...``) and
``image`` (a path relative to the file, or a list of them). Any other field is kept out of the way
(``solution``, ``source``, ...).
"""

from __future__ import annotations

import hashlib
import json
import math
import string
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, PackError

__all__ = ["BUILTIN_SETS", "MAX_CHOICES", "Problem", "ProblemsError", "builtin_problems",
           "load_problems", "problems_sha256"]

# Named sets shipped in l2v_hub/data (`--problems builtin` is the held-out set).
BUILTIN_SETS = {"heldout": "heldout.jsonl", "calibration": "problems.jsonl",
                "readability": "problems.jsonl"}


# Choices are lettered A, B, ... (docs/problems.md says the same range).
MAX_CHOICES = len(string.ascii_uppercase)


class ProblemsError(PackError):
    """A problems file is malformed: names the file, the line and the field."""


@dataclass(frozen=True)
class Problem:
    """A question and its answer: a number (``int`` when integral), or for a multiple-choice
    question (``choices`` given) the right choice's letter. ``images``: absolute paths."""

    id: str
    kind: str
    question: str
    answer: int | float | str
    choices: tuple[str, ...] = ()
    images: tuple[Path, ...] = ()


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a number")
    number = float(value.replace(",", "")) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return int(number) if number.is_integer() else number


def _row(row: Any, n: int, base: Path | None) -> Problem:
    """One parsed row; ValueError("field: why") on a bad field."""
    if not isinstance(row, dict):
        raise ValueError(f"row: expected a JSON object, got {type(row).__name__}")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question: expected a non-empty string")
    # null and [] mean "none", as a table exported to JSONL writes a missing value.
    choices = row.get("choices") or ()
    if not isinstance(choices, list | tuple) or not (choices == () or 2 <= len(choices) <= MAX_CHOICES) \
            or not all(isinstance(c, str) and c.strip() for c in choices):
        raise ValueError(f"choices: expected a list of 2 to {MAX_CHOICES} non-empty strings (A to Z)")
    if "answer" not in row:
        raise ValueError("answer: missing")
    answer: int | float | str
    if choices:
        letters = string.ascii_uppercase[:len(choices)]
        answer = str(row["answer"]).strip().upper()
        if len(answer) != 1 or answer not in letters:
            raise ValueError(f"answer: expected one of the choice letters {', '.join(letters)}")
    else:
        try:
            answer = _number(row["answer"])
        except ValueError as exc:
            raise ValueError(f"answer: {exc} (a choice letter needs 'choices')") from None
    images = row.get("image") or []
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise ValueError("image: expected a path or a list of paths")
    if images and base is None:
        raise ValueError("image: the builtin sets have no images")
    paths = tuple((base / i).resolve() for i in images) if base is not None else ()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"image: no such file {missing[0]}")
    return Problem(str(row.get("id", f"line-{n}")), str(row.get("kind", "")), question, answer,
                   tuple(choices), paths)


def _parse(lines: list[str], origin: str, base: Path | None) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            problem = _row(json.loads(line), n, base)
        except json.JSONDecodeError as exc:
            raise ProblemsError(f"{origin}, line {n}: not JSON ({exc.msg})") from None
        except ValueError as exc:
            raise ProblemsError(f"{origin}, line {n}, field {exc}") from None
        if problem.id in seen:
            raise ProblemsError(f"{origin}, line {n}, field id: {problem.id!r} is already on line "
                                f"{seen[problem.id]}")
        seen[problem.id] = n
        problems.append(problem)
    if not problems:
        raise ProblemsError(f"{origin}: no problems")
    return problems


def load_problems(path: str | Path) -> list[Problem]:
    """Problems from a JSONL file (format in this module's docstring); images resolve against
    the file's folder. Raises ``ProblemsError`` (a ``ValueError``) naming the line and field of
    the first malformed row, and for a missing file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not JSON
    except (OSError, UnicodeDecodeError) as exc:
        raise ProblemsError(f"cannot read the problems file '{path}': {exc}") from None
    return _parse(text.splitlines(), str(path), path.resolve().parent)


def _builtin(name: str) -> list[Problem]:
    text = resources.files("l2v_hub.data").joinpath(BUILTIN_SETS[name]).read_text(encoding="utf-8")
    return _parse(text.splitlines(), f"l2v_hub/data/{BUILTIN_SETS[name]}", None)


def builtin_problems(split: str = "calibration", limit: int | None = 20) -> list[Problem]:
    """Problems shipped in the package.

    ``"heldout"``: the held-out evaluation set (``l2v_hub/data/heldout.jsonl``, docs/problems.md;
    disjoint from the builtin pairs and from the two sets below); ``limit`` takes its first rows
    (``None``: all).

    ``"calibration"`` / ``"readability"``: ``limit`` problems of ``l2v_hub/data/problems.jsonl``
    (100 problems, 7 kinds), evenly spaced so that every kind is in: the even-spaced picks, and
    the ones just after them, two disjoint sets of up to 50 problems.
    """
    if split == "heldout":
        everything = _builtin(split)
        if limit is not None and limit < 1:
            raise ArgumentError(f"limit must be >= 1 or None, got {limit!r}")
        return everything[:limit]
    everything = _builtin("calibration")
    if split not in ("calibration", "readability") or limit is None \
            or not 1 <= limit <= len(everything) // 2:
        raise ArgumentError(f"split must be 'heldout', 'calibration' or 'readability' and limit in "
                            f"[1, {len(everything) // 2}], got {split!r}, {limit!r}")
    offset = 0 if split == "calibration" else 1
    return [everything[(i * len(everything) // limit + offset) % len(everything)] for i in range(limit)]


def problems_sha256(problems: list[Problem]) -> str:
    """sha256 of the problems' canonical JSON (what a calibration and an eval record); choices
    and image contents count when present."""
    rows: list[list[Any]] = []
    for p in problems:
        row: list[Any] = [p.id, p.question, p.answer]
        if p.choices:
            row.append(list(p.choices))
        if p.images:
            row.append([hashlib.sha256(i.read_bytes()).hexdigest() for i in p.images])
        rows.append(row)
    data = json.dumps(rows, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()
