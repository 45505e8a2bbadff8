"""Contrastive pairs: their type, their four sources, their canonical hash, and chat templating.

A pair is one problem in two forms. ``style="response"`` pairs hold two answers (user = problem,
assistant = the worked solution or the direct answer); ``style="instruction"`` pairs hold two
instructions appended to the problem, with no answer (the paper's LAT "prompt contrast").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import BuildError
from ..metadata import PairsInfo
from .builtin_pairs import builtin_problems

__all__ = [
    "COT_INSTRUCTION",
    "DIRECT_INSTRUCTION",
    "ContrastivePair",
    "PairSet",
    "PairStyle",
    "builtin_pairs",
    "load_jsonl",
    "load_pairs",
    "prompt_contrast",
    "render_pair",
    "tokenize_pairs",
]

PairStyle = Literal["response", "instruction"]
COT_INSTRUCTION = "Let's think step by step."
DIRECT_INSTRUCTION = "Answer the question directly."
_CANONICAL_FORMAT = "l2v-hub-pairs/1"


@dataclass(frozen=True)
class ContrastivePair:
    """One problem with its chain-of-thought form ``cot`` and its direct form ``direct``."""

    problem: str
    cot: str
    direct: str


@dataclass(frozen=True)
class PairSet:
    """An ordered set of pairs, where they came from, and how they are rendered."""

    source: str
    style: PairStyle
    pairs: tuple[ContrastivePair, ...]

    def __post_init__(self) -> None:
        if not self.pairs:
            raise BuildError(f"pairs '{self.source}': at least one pair is needed, got none")
        if self.style not in ("response", "instruction"):
            raise BuildError(f"pairs style must be 'response' or 'instruction', got {self.style!r}")

    def __len__(self) -> int:
        return len(self.pairs)

    def canonical_bytes(self) -> bytes:
        """Compact, key-sorted UTF-8 JSON of the style and every pair, in order: what is hashed."""
        body = {
            "format": _CANONICAL_FORMAT,
            "style": self.style,
            "pairs": [[p.problem, p.cot, p.direct] for p in self.pairs],
        }
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def info(self) -> PairsInfo:
        """The provenance record a pack stores in ``method.pairs``."""
        return PairsInfo(source=self.source, count=len(self.pairs), sha256=self.sha256())


def builtin_pairs() -> PairSet:
    """The shipped set: 288 word problems, each with a worked solution and a direct answer."""
    pairs = tuple(ContrastivePair(p.problem, p.cot, p.direct) for p in builtin_problems())
    return PairSet("builtin", "response", pairs)


def prompt_contrast(problems: Iterable[str] | None = None) -> PairSet:
    """Each problem with "Let's think step by step." against "Answer the question directly."

    Without ``problems``, the builtin problems are used.
    """
    texts = [p.problem for p in builtin_problems()] if problems is None else list(problems)
    pairs = tuple(ContrastivePair(t, COT_INSTRUCTION, DIRECT_INSTRUCTION) for t in texts)
    return PairSet("prompt-contrast", "instruction", pairs)


def load_jsonl(path: str | Path) -> PairSet:
    """Read ``{"problem", "cot", "direct"}`` objects, one per line (blank lines are skipped).

    Raises ``BuildError`` naming the file, the line number and the field at fault.
    """
    file = Path(path)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"pairs file '{file}': cannot be read ({exc})") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"pairs file '{file}', line {number}"
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BuildError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise BuildError(f"{where}: expected a JSON object, got {type(record).__name__}")
        for field in ("problem", "cot", "direct"):
            value = record.get(field)
            if not isinstance(value, str) or not value.strip():
                raise BuildError(f"{where}: field '{field}' must be a non-empty string, got {value!r}")
        pairs.append(ContrastivePair(record["problem"], record["cot"], record["direct"]))
    if not pairs:
        raise BuildError(f"pairs file '{file}': holds no pairs")
    return PairSet(f"jsonl:{file.name}", "response", tuple(pairs))


def load_pairs(spec: str | Path | PairSet | None) -> PairSet:
    """``builtin`` (also for ``None``), ``prompt-contrast``, a ``.jsonl`` path, or a ``PairSet``."""
    if isinstance(spec, PairSet):
        return spec
    if spec is None or spec == "builtin":
        return builtin_pairs()
    if spec == "prompt-contrast":
        return prompt_contrast()
    if Path(spec).is_file():
        return load_jsonl(spec)
    raise BuildError(
        f"pairs: expected 'builtin', 'prompt-contrast' or an existing .jsonl file, got {str(spec)!r}"
    )


def _has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_pair(pair: ContrastivePair, style: PairStyle, tokenizer: Any) -> tuple[str, str]:
    """The (CoT, direct) texts the model reads, chat-templated when the tokenizer has a template.

    Response style ends at the assistant's end-of-turn marker: trailing whitespace after it
    belongs to the next turn, so it is dropped. Instruction style ends with the generation prompt,
    where the model is about to answer. Without a template the parts are joined by a blank line.
    """
    texts = []
    for form in (pair.cot, pair.direct):
        if style == "instruction":
            messages = [{"role": "user", "content": f"{pair.problem}\n\n{form}"}]
        else:
            messages = [{"role": "user", "content": pair.problem},
                        {"role": "assistant", "content": form}]
        if _has_chat_template(tokenizer):
            text = tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=style == "instruction"
            )
            texts.append(text.rstrip() if style == "response" else text)
        else:
            texts.append("\n\n".join(m["content"] for m in messages) + (
                "\n\n" if style == "instruction" else ""))
    return texts[0], texts[1]


def tokenize_pairs(pair_set: PairSet, tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """Token ids of every pair's (CoT, direct) texts, unpadded.

    A chat template writes its own special tokens, so they are not added a second time.
    """
    special = not _has_chat_template(tokenizer)
    out: list[tuple[list[int], list[int]]] = []
    for index, pair in enumerate(pair_set.pairs):
        cot, direct = render_pair(pair, pair_set.style, tokenizer)
        ids: Sequence[list[int]] = [
            list(tokenizer(text, add_special_tokens=special)["input_ids"]) for text in (cot, direct)
        ]
        if not ids[0] or not ids[1]:
            raise BuildError(f"pairs '{pair_set.source}': pair {index} tokenizes to an empty input")
        out.append((ids[0], ids[1]))
    return out
