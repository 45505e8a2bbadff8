"""Answers to problems: batched greedy decoding with left padding (prompts: ``prompts.py``), and
the surface measures of an answer (docs/calibration.md, docs/eval.md):

- correct: the last number written in the answer equals the answer; for a multiple-choice
  problem, the last standalone choice letter is the right one (:func:`final_letter`);
- step-by-step: at least 2 distinct numbers, and either >= 2 *different* segments (lines or
  sentences) holding a number, or a step word (step, first, firstly, then, next, finally,
  therefore, thus, so) with >= 3 numbers of which one is not in the question; the last segment of
  a truncated answer is unfinished and does not count (a loop cut mid-line is not a new step);
- non-ASCII share: the share of characters outside ASCII (token soup is full of them).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from .problems import Problem
from .prompts import encode, is_completion, pad_id, question_text, render, tokenizer_of

__all__ = ["Answer", "answer_problems", "final_letter", "final_number", "generate_texts",
           "is_step_by_step", "non_ascii_share", "score", "stops_for", "summarize"]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_SEGMENT = re.compile(r"\n+|(?<=[.!?])\s+")
_STEP_WORD = re.compile(r"\b(?:step|first|firstly|then|next|finally|therefore|thus|so)\b", re.I)
# A base model answering in the plain frame goes on with the next "Question:", or loops on new
# "Answer:" lines; the answer ends at the first of them.
_STOPS = ("Question:", "\nAnswer:")


@dataclass(frozen=True)
class Answer:
    """One greedy answer and its measures."""

    id: str
    text: str
    tokens: int
    truncated: bool
    final: float | str | None
    correct: bool
    step_by_step: bool


def final_number(text: str) -> float | None:
    """The last number written in ``text`` (commas as thousands separators), or None."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def _numbers(text: str) -> list[str]:
    return [n.replace(",", "") for n in _NUMBER.findall(text)]


def is_step_by_step(text: str, question: str, truncated: bool = False) -> bool:
    """Whether ``text`` reasons in steps (the rule in this module's docstring)."""
    numbers = _numbers(text)
    if len(set(numbers)) < 2:
        return False
    segments = [s.strip() for s in _SEGMENT.split(text) if s.strip()]
    if truncated:
        segments = segments[:-1]
    distinct = {s for s in segments if _NUMBER.search(s)}
    new = set(numbers) - set(_numbers(question))
    return len(distinct) >= 2 or (bool(_STEP_WORD.search(text)) and len(numbers) >= 3 and bool(new))


def non_ascii_share(text: str) -> float:
    """Share of ``text``'s characters outside ASCII (0 for an empty text)."""
    return sum(ord(c) > 127 for c in text) / len(text) if text else 0.0


class _StopAt(StoppingCriteria):
    """Ends a row once its generated text holds one of ``texts`` (transformers' own ``stop_strings``
    fails on word-level tokenizers). Decodes only each row's last 16 new tokens per step."""

    def __init__(self, tokenizer: Any, texts: tuple[str, ...], start: int) -> None:
        self.tokenizer, self.texts, self.start = tokenizer, texts, start

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        tails = self.tokenizer.batch_decode(input_ids[:, max(self.start, input_ids.shape[1] - 16):])
        return torch.tensor([any(s in t for s in self.texts) for t in tails], device=input_ids.device)


def stops_for(prompt: str) -> tuple[str, ...]:
    """The stop strings of an answer to ``prompt``: a base model's plain frame ends its answer at
    the next ``Question:`` or ``Answer:`` line (:func:`~.prompts.is_completion`); a chat answer
    at EOS only."""
    return _STOPS if is_completion(prompt) else ()


def _cut(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the first of ``stops``, and whether there was one."""
    ends = [i for s in stops if (i := text.find(s)) >= 0]
    return (text[:min(ends)], True) if ends else (text, False)


def _eos_ids(model: Any, tok: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, list | tuple) else [eos]
    return {int(i) for i in [*ids, tok.eos_token_id] if i is not None}


def final_letter(text: str, problem: Problem) -> str | None:
    """The last standalone choice letter of ``problem`` in ``text`` (not the article "A" before
    a lower-case word); else the letter of the choice whose number the text ends on; else None."""
    letters = string.ascii_uppercase[:len(problem.choices)]
    found = re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])(?!\s+[a-z])", text)
    if found:
        return found[-1]
    final = final_number(text)
    values = [final_number(c) for c in problem.choices]
    hits = [letters[i] for i, v in enumerate(values) if final is not None and v == final]
    return hits[0] if len(hits) == 1 else None


def score(text: str, problem: Problem) -> tuple[float | str | None, bool]:
    """``(final answer read from text, whether it is right)``: the last number, or for a
    multiple-choice problem the choice letter (:func:`final_letter`)."""
    if problem.choices:
        letter = final_letter(text, problem)
        return letter, letter == problem.answer
    final = final_number(text)
    return final, final is not None and abs(final - float(problem.answer)) < 1e-9


def _batches(problems: list[Problem], lengths: list[int], size: int) -> list[list[int]]:
    """Indices in batches of ``size``: rows with the same number of images together (a
    processor takes one kind per call), by prompt length within them (less padding)."""
    order = sorted(range(len(problems)), key=lambda i: (len(problems[i].images), lengths[i]))
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < size and len(problems[out[-1][0]].images) == len(problems[i].images):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _device(model: Any) -> torch.device:
    # Under a device_map the inputs go where the embeddings are (accelerate moves the rest).
    return model.get_input_embeddings().weight.device


@torch.inference_mode()
def generate_texts(model: Any, processor_or_tokenizer: Any, inputs: dict[str, Any],
                   max_new_tokens: int, stops: tuple[str, ...] = (),
                   **generate: Any) -> list[tuple[str, bool]]:
    """``(text, truncated)`` per row of ``inputs`` (:func:`~.prompts.encode_prompts`): greedy
    (unless ``generate`` asks otherwise), ended by EOS or by the first of ``stops`` (cut off,
    not kept), stripped; ``truncated`` when neither came within ``max_new_tokens``."""
    tok = tokenizer_of(processor_or_tokenizer)
    width = inputs["input_ids"].shape[1]
    stop = {"stopping_criteria": StoppingCriteriaList([_StopAt(tok, stops, width)])} if stops else {}
    gen = model.generate(**{k: v.to(_device(model)) for k, v in inputs.items()},
                         **{"do_sample": False, **generate}, max_new_tokens=max_new_tokens,
                         pad_token_id=pad_id(processor_or_tokenizer), **stop)
    eos = _eos_ids(model, tok)
    out = []
    for row in gen[:, width:].tolist():
        ended = next((k for k, t in enumerate(row) if t in eos), None)
        text, stopped = _cut(tok.decode(row[:ended], skip_special_tokens=True), stops)
        out.append((text.strip(), ended is None and not stopped))
    return out


def answer_problems(model: Any, processor_or_tokenizer: Any, problems: list[Problem],
                    max_new_tokens: int = 64, batch_size: int = 20, regime: str = "plain",
                    on_batch: Callable[[list[Answer]], None] | None = None) -> list[Answer]:
    """Greedy answers in the input order, batched with left padding (:func:`encode`).

    ``processor_or_tokenizer``: the model's tokenizer, or its processor when a problem has an
    image. ``on_batch`` gets each batch's answers as they are done (to keep them on disk).
    """
    tok = tokenizer_of(processor_or_tokenizer)
    lengths = [len(question_text(p, regime)) for p in problems]
    out: list[Answer | None] = [None] * len(problems)
    for chunk in _batches(problems, lengths, batch_size):
        inputs = encode(processor_or_tokenizer, [problems[i] for i in chunk], regime)
        stops = stops_for(render(processor_or_tokenizer, problems[chunk[0]], regime))
        texts = generate_texts(model, processor_or_tokenizer, inputs, max_new_tokens, stops)
        done = []
        for (text, truncated), i in zip(texts, chunk, strict=True):
            p = problems[i]
            final, correct = score(text, p)
            out[i] = Answer(p.id, text, len(tok(text, add_special_tokens=False)["input_ids"]),
                            truncated, final, correct, is_step_by_step(text, p.question, truncated))
            done.append(out[i])
        if on_batch is not None:
            on_batch(done)  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def summarize(answers: list[Answer]) -> dict[str, Any]:
    """accuracy, step_by_step (shares), answer_tokens (mean), truncated (share), non_ascii (mean
    share) and every answer."""
    n = max(1, len(answers))
    return {
        "accuracy": sum(a.correct for a in answers) / n,
        "step_by_step": sum(a.step_by_step for a in answers) / n,
        "answer_tokens": sum(a.tokens for a in answers) / n,
        "truncated": sum(a.truncated for a in answers) / n,
        "non_ascii": sum(non_ascii_share(a.text) for a in answers) / n,
        "answers": [asdict(a) for a in answers],
    }
