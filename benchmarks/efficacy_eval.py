"""What the efficacy benchmark measures on one target model: prompts, greedy batched generation,
and the four metrics (final-answer accuracy, step-by-step structure, length, perplexity).

The definitions here are the ones docs/efficacy.md states; change both together.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "NEUTRAL_TEXT",
    "PROBLEMS",
    "Problem",
    "Target",
    "evaluate",
    "final_number",
    "is_step_by_step",
    "load_problems",
    "perplexity",
]

DATA = Path(__file__).resolve().parent / "data"
PROBLEMS = DATA / "eval_problems.jsonl"
NEUTRAL_TEXT = Path(__file__).resolve().parents[1] / "l2v_hub" / "data" / "neutral_text.txt"

# A number as written in an answer: optional sign, thousands separators, decimals.
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")
# Segments: lines, and sentences inside a line (a sentence ends at . ! ? followed by a space).
_SEGMENT = re.compile(r"\n+|(?<=[.!?])\s+")
_STEP_WORD = re.compile(r"\b(?:step|first|firstly|then|next|finally|therefore|thus|so)\b", re.I)
# A base model's answer ends where it starts writing the next question of the pattern.
_STOP = "Question:"


@dataclass(frozen=True)
class Problem:
    id: str
    kind: str
    question: str
    answer: int


@dataclass(frozen=True)
class Target:
    """A loaded target model and how it is prompted (chat template or a plain Q/A prompt)."""

    model: Any
    tokenizer: Any
    chat: bool


def load_problems(path: Path = PROBLEMS, limit: int | None = None) -> list[Problem]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    problems = [Problem(r["id"], r["kind"], r["question"], int(r["answer"])) for r in rows]
    if limit is None or limit >= len(problems):
        return problems
    # Evenly spaced through the file, which is grouped by kind: a subset covers every kind.
    return [problems[i * len(problems) // limit] for i in range(limit)]


def final_number(text: str) -> float | None:
    """The last number written in ``text`` (commas as thousands separators), or None."""
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def _numbers(text: str) -> list[str]:
    return [n.replace(",", "") for n in _NUMBER.findall(text)]


def is_step_by_step(text: str, question: str, truncated: bool = False) -> bool:
    """At least 2 distinct numbers, and either >= 2 *different* segments (lines or sentences)
    holding a number, or a step word (step, first, firstly, then, next, finally, therefore, thus,
    so) with >= 3 numbers of which one is not in the question. The last segment of a truncated
    answer is unfinished and does not count (a loop cut mid-line is not a new step).
    """
    numbers = _numbers(text)
    if len(set(numbers)) < 2:
        return False
    segments = [s.strip() for s in _SEGMENT.split(text) if s.strip()]
    if truncated:
        segments = segments[:-1]
    distinct = {s for s in segments if _NUMBER.search(s)}
    new = set(numbers) - set(_numbers(question))
    return len(distinct) >= 2 or (bool(_STEP_WORD.search(text)) and len(numbers) >= 3 and bool(new))


def _prompt_ids(target: Target, question: str) -> list[int]:
    tok = target.tokenizer
    if target.chat:
        text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                       add_generation_prompt=True)
        return list(tok(text, add_special_tokens=False)["input_ids"])
    return list(tok(f"Question: {question}\nAnswer:")["input_ids"])


def _pad_id(tok: Any) -> int:
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    return ids, mask


@torch.inference_mode()
def generate_answers(target: Target, problems: list[Problem], max_new_tokens: int,
                     batch_size: int) -> list[tuple[str, bool]]:
    """Greedy answers, batched with left padding (prompts sorted by length to pad little).

    Returns ``(answer text, truncated)`` per problem in the input order; ``truncated`` means the
    answer ran into ``max_new_tokens`` before an end-of-turn token or the next "Question:".
    """
    tok = target.tokenizer
    prompts = [_prompt_ids(target, p.question) for p in problems]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[tuple[str, bool]] = [("", False)] * len(prompts)
    stop = {} if target.chat else {"stop_strings": [_STOP], "tokenizer": tok}
    eos = set(_eos_ids(target.model, tok))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        ids, mask = _left_pad([prompts[i] for i in chunk], _pad_id(tok))
        gen = target.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                    max_new_tokens=max_new_tokens, pad_token_id=_pad_id(tok), **stop)
        for row, i in zip(gen[:, ids.shape[1]:], chunk, strict=True):
            tokens = row.tolist()
            ended = next((k for k, t in enumerate(tokens) if t in eos), None)
            text = tok.decode(tokens[:ended], skip_special_tokens=True)
            stopped = _STOP in text and not target.chat
            text = text.split(_STOP)[0] if not target.chat else text
            out[i] = (text.strip(), ended is None and not stopped)
    return out


def _eos_ids(model: Any, tok: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, list | tuple) else [eos]
    return [int(i) for i in [*ids, tok.eos_token_id] if i is not None]


@torch.inference_mode()
def perplexity(target: Target, text: str) -> float:
    """exp of the mean next-token negative log-likelihood of ``text``, scored as if the model had
    written it: the first token is the prompt, the rest goes in a second forward on its cache,
    so a patch steers the text's tokens exactly as it steers generated ones."""
    ids = torch.tensor([target.tokenizer(text)["input_ids"]])
    first = target.model(input_ids=ids[:, :1], attention_mask=torch.ones_like(ids[:, :1]), use_cache=True)
    # transformers 5.x names the cache `cache`; 4.x `past_key_values`.
    name = "cache" if "cache" in inspect.signature(target.model.forward).parameters else "past_key_values"
    rest = target.model(input_ids=ids[:, 1:], attention_mask=torch.ones_like(ids),
                        use_cache=True, **{name: first[name]})
    logits = torch.cat([first.logits[0, -1:], rest.logits[0, :-1]]).float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    return math.exp(float(nll))


def evaluate(target: Target, problems: list[Problem], max_new_tokens: int,
             batch_size: int) -> dict[str, Any]:
    """Accuracy, step-by-step share, mean length in tokens, truncated share, and every answer."""
    answers = generate_answers(target, problems, max_new_tokens, batch_size)
    correct = []
    for p, (text, _) in zip(problems, answers, strict=True):
        got = final_number(text)
        correct.append(got is not None and abs(got - p.answer) < 1e-9)
    lengths = [len(target.tokenizer(text, add_special_tokens=False)["input_ids"]) for text, _ in answers]
    n = len(problems)
    return {
        "n": n,
        "accuracy": sum(correct) / n,
        "step_by_step": sum(is_step_by_step(t, p.question, tr)
                            for p, (t, tr) in zip(problems, answers, strict=True)) / n,
        "length": sum(lengths) / n,
        "truncated": sum(tr for _, tr in answers) / n,
        "correct": correct,
        "answers": [{"id": p.id, "answer": t, "truncated": tr}
                    for p, (t, tr) in zip(problems, answers, strict=True)],
    }
