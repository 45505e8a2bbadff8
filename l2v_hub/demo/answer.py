"""The demo's fresh-process side: load a target, patch it by model id, answer with and without.

Run as ``python -m l2v_hub.demo.answer RESULTS.json CACHE_DIR TARGET...`` with
``$L2V_HUB_STORE`` and ``$L2V_HUB_REGISTRY`` set: nothing here knows where the packs are, the
one line ``l2v_hub.patch(model)`` finds them through the registry, as a user's code would.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import l2v_hub
from l2v_hub.measure import final_number
from l2v_hub.measure.text import written_logits

__all__ = ["QUESTIONS", "Answer", "Question", "answer_questions", "final_number", "load_target",
           "main"]


@dataclass(frozen=True)
class Question:
    """A reasoning question and its known final answer (a number)."""

    text: str
    answer: float


QUESTIONS = (
    Question("A pen costs 3 dollars. Tom buys 4 pens and pays with a 20 dollar bill. "
             "How many dollars of change does he get?", 8),
    Question("Anna is 5 years older than Ben. Ben is 12 years old. How old will Anna be in "
             "3 years?", 20),
    Question("A tank holds 50 liters and starts empty. Water flows in at 5 liters per minute. "
             "How many minutes until the tank is full?", 10),
)


@dataclass(frozen=True)
class Answer:
    """One greedy answer: its text, length in tokens, non-empty lines, and whether it is right."""

    text: str
    tokens: int
    lines: int
    final: float | None
    correct: bool


def prompt(question: Question) -> str:
    # Gemma 3 270M is a base model without a chat template: a plain question/answer frame.
    return f"Question: {question.text}\nAnswer:"


def _answer(model: Any, tokenizer: Any, question: Question, max_new_tokens: int) -> Answer:
    inputs = tokenizer(prompt(question), return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    # A base model goes on with the next "Question:"; the answer ends there.
    text = tokenizer.decode(new, skip_special_tokens=True).split("Question:")[0].strip()
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    final = final_number(text)
    lines = sum(1 for line in text.splitlines() if line.strip())
    return Answer(text, tokens, lines, final, final is not None and abs(final - question.answer) < 1e-6)


def _answer_logits(model: Any, tokenizer: Any, question: Question, answer: str) -> torch.Tensor:
    """Next-token logits over the first 8 tokens of ``answer``, read as text the model writes
    (so a patch that steers generated tokens steers them)."""
    inputs = tokenizer(prompt(question), return_tensors="pt")
    written = tokenizer(" " + answer, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :8]
    return written_logits(model, inputs["input_ids"], written)


def answer_questions(
    model: Any, tokenizer: Any, questions: tuple[Question, ...] = QUESTIONS, max_new_tokens: int = 48
) -> dict[str, Any]:
    """Each question answered greedily without, then with, ``l2v_hub.patch(model)``.

    Also the largest change the patch makes to the next-token logits over the first 8 tokens of
    the unpatched answer (read as text the model writes, so every positions policy acts there).
    """
    rows = []
    for q in questions:
        plain = _answer(model, tokenizer, q, max_new_tokens)
        plain_logits = _answer_logits(model, tokenizer, q, plain.text)
        with l2v_hub.patch(model) as handle:  # the pack is resolved by the model's id
            steered = _answer(model, tokenizer, q, max_new_tokens)
            steered_logits = _answer_logits(model, tokenizer, q, plain.text)
            pack = handle.pack
        rows.append({
            "question": asdict(q),
            "plain": asdict(plain),
            "patched": asdict(steered),
            "max_logit_change": float((steered_logits - plain_logits).abs().max()),
        })
    return {
        "model_id": model.name_or_path,
        "model_class": type(model).__name__,
        "pack": f"{pack.name}@{pack.version} (layers {list(pack.defaults.layers)}, strength {pack.defaults.strength:g}, positions {pack.hook.positions})",
        "rows": rows,
    }


def load_target(spec: str, cache: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a ``module:function`` loader called with ``cache``."""
    module, _, function = spec.partition(":")
    loader: Callable[[Path], tuple[Any, Any]] = getattr(importlib.import_module(module), function)
    return loader(cache)


def main(argv: list[str]) -> None:
    """``RESULTS.json CACHE_DIR MAX_NEW_TOKENS LOADER...``: each ``module:function`` loader gives
    ``(model, tokenizer)`` from the cache folder; every target's answers go to RESULTS.json."""
    out, cache, max_new_tokens, loaders = Path(argv[0]), Path(argv[1]), int(argv[2]), argv[3:]
    results = []
    for spec in loaders:
        start = time.perf_counter()
        model, tokenizer = load_target(spec, cache)
        print(f"   [fresh process] loaded {model.name_or_path} ({type(model).__name__}) in "
              f"{time.perf_counter() - start:.1f} s; {len(QUESTIONS)} questions, without and with "
              "l2v_hub.patch(model)", flush=True)
        results.append({**answer_questions(model, tokenizer, max_new_tokens=max_new_tokens),
                        "seconds": time.perf_counter() - start})
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
