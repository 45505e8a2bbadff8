"""Answers kept on disk as they are made (``answers.jsonl`` in the output folder), so that an
interrupted evaluation resumes where it stopped: a line per answer or per perplexity, tagged with
the row's key and the problem's digest; lines of other rows or changed problems are ignored."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..measure import Answer
from ..measure.problems import Problem

__all__ = ["AnswerStore", "problem_digest"]

log = logging.getLogger(__name__)


def problem_digest(problem: Problem) -> str:
    """A short digest of what decides a problem's answer (question, answer, choices, images)."""
    data = json.dumps([problem.question, problem.answer, list(problem.choices),
                       [str(i) for i in problem.images]])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


class AnswerStore:
    """The answers of every row so far; appends to ``path`` (or keeps them in memory: None)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.answers: dict[tuple[str, str], tuple[str, Answer]] = {}
        self.perplexities: dict[str, float] = {}
        # Seconds spent answering, per (row, problem id): a batch's time shared by its answers.
        self.seconds: dict[tuple[str, str], float] = {}
        if path is not None and path.is_file():
            self._read(path)

    def _read(self, path: Path) -> None:
        kept = 0
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                row = json.loads(line)
                if "perplexity" in row:
                    self.perplexities[row["row"]] = float(row["perplexity"])
                else:
                    answer = Answer(**row["answer"])
                    self.answers[(row["row"], answer.id)] = (row["digest"], answer)
                    if "seconds" in row:
                        self.seconds[(row["row"], answer.id)] = float(row["seconds"])
                kept += 1
            except (ValueError, KeyError, TypeError):
                # A line cut by the interruption itself: that one answer is asked again.
                log.warning("%s, line %d: unreadable, ignored", path, n)
        log.info("resuming from %s: %d answers and perplexities kept", path, kept)

    def get(self, row: str, problem: Problem) -> Answer | None:
        """The kept answer of ``row`` to ``problem``, if the problem is unchanged."""
        found = self.answers.get((row, problem.id))
        return found[1] if found is not None and found[0] == problem_digest(problem) else None

    def _append(self, lines: list[dict[str, Any]]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as out:
            out.write("".join(json.dumps(line) + "\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())

    def put(self, row: str, problems: dict[str, Problem], answers: list[Answer],
            seconds: float = 0.0) -> None:
        """Keep ``answers`` of ``row`` (``problems`` by id, for their digests), made in
        ``seconds`` together."""
        lines = []
        each = round(seconds / max(1, len(answers)), 3)
        for a in answers:
            digest = problem_digest(problems[a.id])
            self.answers[(row, a.id)] = (digest, a)
            self.seconds[(row, a.id)] = each
            lines.append({"row": row, "digest": digest, "answer": asdict(a), "seconds": each})
        self._append(lines)

    def put_perplexity(self, row: str, value: float) -> None:
        self.perplexities[row] = value
        self._append([{"row": row, "perplexity": value}])
