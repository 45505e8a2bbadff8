"""Whether an answer opens with reasoning or with its answer: the behaviour a CoT pack must move.

A model decides at its last prompt token whether it reasons or answers outright (docs/method.md,
"Positions"); the first few answer tokens show which it chose, so this needs only a short answer
(10 tokens in calibration and docs/reasoning.md). The rule (issue 18; docs/reasoning.md checks
it against the model's answers to its own step-by-step and direct prompts):

- a leading "1." or "1)" before a word is a numbered list's marker, not a number: it is skipped;
- an empty answer, one that starts with a number (after ``*``, ``#``, ``$`` or spaces; a bare
  equation such as "11 - 34 = 7" included), or one that starts with "the answer is" /
  "answer:", opens with its answer;
- else a first clause (up to ``. ``, ``:`` or a newline) that shows a calculation (an operator
  between two numbers) opens with reasoning;
- else, when the first clause (up to ``. ``, ``:`` or a newline) holds a number the question does
  not and shows no calculation (no operator between two numbers), it states a result before any
  reasoning ("The change should be 32 dollars", "His change = 14"): answer;
- anything else opens with reasoning ("To solve this problem, we need to", "First, 3 * 12 = 36").
"""

from __future__ import annotations

import re

__all__ = ["opens_reasoning"]

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")
_ANSWER_FIRST = re.compile(r"(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is\b|:|=)", re.I)
_LIST = re.compile(r"^1[.)]\s+(?=[A-Za-z*])")  # "1. First, ..." is a numbered list, not an answer
_CLAUSE_END = re.compile(r"\.\s|\.$|\n|:")
_WORK = re.compile(r"\d\s*[-+*/×÷x]\s*\(?\d")


def opens_reasoning(text: str, question: str) -> bool:
    """True when ``text`` (an answer, any length) opens with reasoning rather than with its
    answer to ``question`` (the rule in this module's docstring)."""
    t = _LIST.sub("", text.strip(), count=1).lstrip("*#$ ").strip()
    if not t or t[0].isdigit() or (t[0] == "-" and t[1:2].isdigit()) or _ANSWER_FIRST.match(t):
        return False
    clause = _CLAUSE_END.split(t, maxsplit=1)[0]
    if _WORK.search(clause):
        return True
    asked = set(_NUMBER.findall(question))
    return all(n in asked for n in _NUMBER.findall(clause))
