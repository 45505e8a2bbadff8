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
from ..metadata import READS, PairsInfo, Read
from .builtin_pairs import builtin_problems

__all__ = [
    "COT_INSTRUCTION",
    "DIRECT_INSTRUCTION",
    "ContrastivePair",
    "PairSet",
    "PairStyle",
    "builtin_pairs",
    "check_read",
    "load_jsonl",
    "load_pairs",
    "prompt_contrast",
    "read_spans",
    "render_pair",
    "tokenize_pairs",
]

PairStyle = Literal["response", "instruction"]
Span = tuple[int, int]  # [start, stop) token indices of one text
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


def _render(messages: list[dict[str, str]], tokenizer: Any, generation_prompt: bool) -> str:
    """``messages`` as the model reads them: chat-templated when the tokenizer has a template,
    else their contents joined by a blank line (and one after, for a generation prompt)."""
    if _has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    return "\n\n".join(m["content"] for m in messages) + ("\n\n" if generation_prompt else "")


def render_pair(pair: ContrastivePair, style: PairStyle, tokenizer: Any) -> tuple[str, str]:
    """The (CoT, direct) texts the model reads, chat-templated when the tokenizer has a template.

    Response style ends at the assistant's end-of-turn marker: trailing whitespace after it
    belongs to the next turn, so it is dropped. Instruction style ends with the generation prompt,
    where the model is about to answer. Without a template the parts are joined by a blank line.
    """
    texts = []
    for form in (pair.cot, pair.direct):
        if style == "instruction":
            texts.append(_render([{"role": "user", "content": f"{pair.problem}\n\n{form}"}],
                                 tokenizer, True))
        else:
            messages = [{"role": "user", "content": pair.problem},
                        {"role": "assistant", "content": form}]
            text = _render(messages, tokenizer, False)
            texts.append(text.rstrip() if _has_chat_template(tokenizer) else text)
    return texts[0], texts[1]


def _token_ids(text: str, tokenizer: Any) -> list[int]:
    # A chat template writes its own special tokens, so they are not added a second time.
    return list(tokenizer(text, add_special_tokens=not _has_chat_template(tokenizer))["input_ids"])


def tokenize_pairs(pair_set: PairSet, tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """Token ids of every pair's (CoT, direct) texts, unpadded."""
    out: list[tuple[list[int], list[int]]] = []
    for index, pair in enumerate(pair_set.pairs):
        ids: Sequence[list[int]] = [_token_ids(t, tokenizer)
                                    for t in render_pair(pair, pair_set.style, tokenizer)]
        if not ids[0] or not ids[1]:
            raise BuildError(f"pairs '{pair_set.source}': pair {index} tokenizes to an empty input")
        out.append((ids[0], ids[1]))
    return out


def check_read(read: str) -> str:
    """``read`` if it is one of ``READS``, else ``BuildError``."""
    if read not in READS:
        raise BuildError(f"read must be one of {', '.join(map(repr, READS))}, got {read!r}")
    return read


def read_spans(pair_set: PairSet, tokenizer: Any, token_pairs: Sequence[tuple[list[int], list[int]]],
               read: Read = "last") -> list[tuple[Span, Span]]:
    """Which tokens of each pair's (CoT, direct) texts ``extract`` reads, as ``[start, stop)``
    indices into ``token_pairs`` (what :func:`tokenize_pairs` gave for ``pair_set``).

    ``last``: the last token. ``response_mean`` / ``response_first``: the assistant response
    (response-style pairs only), every token after the prompt rendered with the generation prompt
    (its end-of-turn marker included), averaged or its first. Raises ``BuildError`` for an unknown
    ``read``, instruction-style pairs, or a pair whose prompt is not a token prefix of its text
    (the template or tokenizer merges across the prompt's end) or which has no response token.
    """
    check_read(read)
    if read == "last":
        return [((len(cot) - 1, len(cot)), (len(direct) - 1, len(direct)))
                for cot, direct in token_pairs]
    if pair_set.style != "response":
        raise BuildError(f"read {read!r} needs response-style pairs (an assistant answer to "
                         f"read); pairs '{pair_set.source}' are {pair_set.style}-style: use 'last'")
    out = []
    for index, (pair, ids) in enumerate(zip(pair_set.pairs, token_pairs, strict=True)):
        prompt = _token_ids(_render([{"role": "user", "content": pair.problem}], tokenizer, True),
                            tokenizer)
        spans = []
        for form, tokens in zip(("cot", "direct"), ids, strict=True):
            where = f"pairs '{pair_set.source}', pair {index} ({form})"
            if tokens[: len(prompt)] != prompt:
                raise BuildError(f"{where}: the prompt with the generation prompt ({len(prompt)} "
                                 "tokens) is not a token prefix of the full text, so the response "
                                 "cannot be located; use read 'last'")
            if len(tokens) <= len(prompt):
                raise BuildError(f"{where}: no response token after the {len(prompt)}-token prompt")
            spans.append((len(prompt), len(tokens) if read == "response_mean" else len(prompt) + 1))
        out.append((spans[0], spans[1]))
    return out
