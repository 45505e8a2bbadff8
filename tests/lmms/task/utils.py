"""The local task's documents as l2v-hub Problems: asked in the ``plain`` regime and scored by
``l2v_hub.measure.score``, as ``l2v-hub eval`` asks and scores them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from l2v_hub.measure import Problem, question_text, score

__all__ = ["doc_to_text", "doc_to_visual", "problem_of", "process_results", "write_task_data"]


def write_task_data(problems_jsonl: Path, out: Path) -> Path:
    """The rows of ``problems_jsonl`` (``make_image_problems``) as the task's ``test.jsonl`` in
    ``out``: answers as strings and choices as lists in every row (one type per column), images
    as absolute paths."""
    rows = []
    for line in problems_jsonl.read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        rows.append({"id": p["id"], "kind": p["kind"], "question": p["question"],
                     "answer": str(p["answer"]), "choices": p.get("choices", []),
                     "image": str((problems_jsonl.parent / p["image"]).resolve())})
    out.mkdir(parents=True, exist_ok=True)
    (out / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out / "test.jsonl"


def problem_of(doc: dict[str, Any]) -> Problem:
    choices = tuple(doc["choices"])
    answer: int | float | str = doc["answer"]
    if not choices:
        answer = float(answer) if "." in str(answer) else int(answer)
    return Problem(doc["id"], doc["kind"], doc["question"], answer, choices, (Path(doc["image"]),))


def doc_to_visual(doc: dict[str, Any]) -> list[Image.Image]:
    with Image.open(doc["image"]) as image:
        return [image.convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    return question_text(problem_of(doc), "plain")


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, bool]:
    return {"correct": score(results[0], problem_of(doc))[1]}
