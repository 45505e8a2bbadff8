"""Problems with known numeric answers: the builtin set shipped in the package, or a JSONL file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import PackError

__all__ = ["Problem", "builtin_problems", "load_problems", "problems_sha256"]


@dataclass(frozen=True)
class Problem:
    """A question and its integer answer; ``kind`` groups the templates (word, arithmetic, ...)."""

    id: str
    kind: str
    question: str
    answer: int


def _parse(lines: list[str], origin: str) -> list[Problem]:
    problems = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problems.append(Problem(str(row["id"]), str(row.get("kind", "")), str(row["question"]),
                                    int(row["answer"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise PackError(f"{origin}, line {n}: expected id, question and an integer answer "
                            f"({type(exc).__name__}: {exc})") from None
    return problems


def load_problems(path: str | Path) -> list[Problem]:
    """Problems from a JSONL file (``id``, ``question``, ``answer``, optional ``kind``)."""
    return _parse(Path(path).read_text(encoding="utf-8").splitlines(), str(path))


def builtin_problems(split: str = "calibration", limit: int = 20) -> list[Problem]:
    """``limit`` problems of ``l2v_hub/data/problems.jsonl`` (100 problems, 7 kinds, none in the
    builtin contrastive pairs), evenly spaced so that every kind is in.

    ``split="calibration"`` takes the even-spaced picks, ``"readability"`` the ones just after
    them: two disjoint sets of up to 50 problems.
    """
    text = resources.files("l2v_hub.data").joinpath("problems.jsonl").read_text(encoding="utf-8")
    everything = _parse(text.splitlines(), "l2v_hub/data/problems.jsonl")
    if split not in ("calibration", "readability") or not 1 <= limit <= len(everything) // 2:
        raise ValueError(f"split must be 'calibration' or 'readability' and limit in "
                         f"[1, {len(everything) // 2}], got {split!r}, {limit!r}")
    offset = 0 if split == "calibration" else 1
    return [everything[(i * len(everything) // limit + offset) % len(everything)] for i in range(limit)]


def problems_sha256(problems: list[Problem]) -> str:
    """sha256 of the problems' canonical JSON (what a calibration records)."""
    data = json.dumps([[p.id, p.question, p.answer] for p in problems], separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()
