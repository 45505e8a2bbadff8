"""Answers to problems: prompts (the model's chat template, else a plain Q/A frame), batched greedy
decoding with left padding, and the surface measures of an answer (docs/calibration.md):

- correct: the last number written in the answer equals the integer answer;
- step-by-step: at least 2 distinct numbers, and either >= 2 *different* segments (lines or
  sentences) holding a number, or a step word (step, first, firstly, then, next, finally,
  therefore, thus, so) with >= 3 numbers of which one is not in the question; the last segment of
  a truncated answer is unfinished and does not count (a loop cut mid-line is not a new step);
- non-ASCII share: the share of characters outside ASCII (token soup is full of them).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from .problems import Problem

__all__ = ["Answer", "answer_problems", "final_number", "is_step_by_step", "non_ascii_share",
           "prompt_ids", "summarize"]

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
_SEGMENT = re.compile(r"\n+|(?<=[.!?])\s+")
_STEP_WORD = re.compile(r"\b(?:step|first|firstly|then|next|finally|therefore|thus|so)\b", re.I)
# A base model answering in the plain frame goes on with the next "Question:"; the answer ends there.
_STOP = "Question:"


@dataclass(frozen=True)
class Answer:
    """One greedy answer and its measures."""

    id: str
    text: str
    tokens: int
    truncated: bool
    final: float | None
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


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """The question as the model is asked it: its chat template (user turn, generation prompt),
    or ``Question: ...\\nAnswer:`` for a model without one."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                             tokenize=False, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(f"Question: {question}\nAnswer:")["input_ids"])


class _StopAt(StoppingCriteria):
    """Ends a row once its generated text holds ``text`` (transformers' own ``stop_strings``
    fails on word-level tokenizers). Decodes only each row's last 16 new tokens per step."""

    def __init__(self, tokenizer: Any, text: str, start: int) -> None:
        self.tokenizer, self.text, self.start = tokenizer, text, start

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        tails = self.tokenizer.batch_decode(input_ids[:, max(self.start, input_ids.shape[1] - 16):])
        return torch.tensor([self.text in t for t in tails], device=input_ids.device)


def _eos_ids(model: Any, tok: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, list | tuple) else [eos]
    return {int(i) for i in [*ids, tok.eos_token_id] if i is not None}


@torch.inference_mode()
def answer_problems(model: Any, tokenizer: Any, problems: list[Problem], max_new_tokens: int = 64,
                    batch_size: int = 20) -> list[Answer]:
    """Greedy answers in the input order, batched with left padding (prompts sorted by length)."""
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    chat = bool(getattr(tokenizer, "chat_template", None))
    prompts = [prompt_ids(tokenizer, p.question) for p in problems]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    device = next(p.device for p in model.parameters())
    eos = _eos_ids(model, tokenizer)
    out: list[Answer | None] = [None] * len(problems)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        stop = {} if chat else {"stopping_criteria": StoppingCriteriaList([_StopAt(tokenizer, _STOP, width)])}
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad, **stop)
        for row, i in zip(gen[:, width:].tolist(), chunk, strict=True):
            ended = next((k for k, t in enumerate(row) if t in eos), None)
            text = tokenizer.decode(row[:ended], skip_special_tokens=True)
            stopped = not chat and _STOP in text
            text = text.split(_STOP)[0].strip() if not chat else text.strip()
            truncated = ended is None and not stopped
            p, final = problems[i], final_number(text)
            out[i] = Answer(p.id, text, len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                            truncated, final, final is not None and abs(final - p.answer) < 1e-9,
                            is_step_by_step(text, p.question, truncated))
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
