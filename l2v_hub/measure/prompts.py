"""How a problem is asked: the prompt regime, the model's own chat template, and its processor
for the images; batches are left-padded so that every row's answer starts at the same column.

Regimes (docs/eval.md):

- ``plain``: the question as is;
- ``direct``: the question and "Answer with only the final number." (or "... the letter of the
  correct choice."): the paper's Non-CoT baseline, where a CoT pack has room to act;
- ``cot``: the question and "Let's think step by step.": the explicit chain-of-thought prompt a
  pack is compared with.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..errors import ArgumentError
from .problems import Problem

__all__ = ["REGIMES", "chat_prompt", "encode", "encode_prompts", "is_chat", "is_completion", "pad_id",
           "prompt_ids", "question_text", "render", "tokenizer_of"]

REGIMES = ("plain", "direct", "cot")
_DIRECT = {False: "Answer with only the final number.",
           True: "Answer with only the letter of the correct choice."}
_COT = "Let's think step by step."


def tokenizer_of(processor_or_tokenizer: Any) -> Any:
    """The tokenizer inside a processor, or the tokenizer itself."""
    return getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)


def is_chat(processor_or_tokenizer: Any) -> bool:
    """Whether the model is asked through a chat template (the processor's or the tokenizer's)."""
    return bool(getattr(processor_or_tokenizer, "chat_template", None)
                or getattr(tokenizer_of(processor_or_tokenizer), "chat_template", None))


def is_completion(prompt: str) -> bool:
    """Whether ``prompt`` is the plain ``Question: ...\nAnswer:`` frame of a base model (also
    when a template renders it): the model then goes on past its answer, which ends at the next
    ``Question:`` or ``Answer:`` line."""
    return prompt.rstrip().endswith("Answer:")


def pad_id(processor_or_tokenizer: Any) -> int:
    """The padding token id (the EOS token for tokenizers without one)."""
    tok = tokenizer_of(processor_or_tokenizer)
    return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)


def question_text(problem: Problem, regime: str = "plain") -> str:
    """The user's words: the question, its choices as ``A. ...`` lines, the regime's instruction."""
    if regime not in REGIMES:
        raise ArgumentError(f"prompt must be one of {', '.join(REGIMES)}, got {regime!r}")
    lines = [problem.question.strip()]
    lines += [f"{letter}. {choice}" for letter, choice in zip(string.ascii_uppercase, problem.choices, strict=False)]
    if regime == "direct":
        lines.append(_DIRECT[bool(problem.choices)])
    elif regime == "cot":
        lines.append(_COT)
    return "\n".join(lines)


def chat_prompt(processor_or_tokenizer: Any, words: str, images: int = 0, *,
                what: str = "the prompt") -> str:
    """The prompt text for the user's ``words`` after ``images`` images: the processor's chat
    template (image parts first), else the tokenizer's, else ``Question: ...\\nAnswer:`` (a base
    model). Raises ``ArgumentError`` naming ``what`` when there are images and no chat template
    to place them in."""
    if images:
        if not getattr(processor_or_tokenizer, "chat_template", None):
            raise ArgumentError(f"{what} has an image, but "
                                f"{type(processor_or_tokenizer).__name__} has no chat template "
                                "to place it in the prompt: pass the model's processor")
        parts = [*({"type": "image"} for _ in range(images)), {"type": "text", "text": words}]
        return processor_or_tokenizer.apply_chat_template(
            [{"role": "user", "content": parts}], tokenize=False, add_generation_prompt=True)
    tok = tokenizer_of(processor_or_tokenizer)
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template([{"role": "user", "content": words}], tokenize=False,
                                       add_generation_prompt=True)
    return f"Question: {words}\nAnswer:"


def render(processor_or_tokenizer: Any, problem: Problem, regime: str) -> str:
    """``problem``'s prompt text in ``regime`` (:func:`chat_prompt`)."""
    return chat_prompt(processor_or_tokenizer, question_text(problem, regime), len(problem.images),
                       what=f"problem {problem.id!r}")


def prompt_ids(tokenizer: Any, question: str) -> list[int]:
    """A text question as the model is asked it (``plain`` regime), as token ids."""
    text = render(tokenizer, Problem("", "", question, 0), "plain")
    return list(tokenizer(text, add_special_tokens=not is_chat(tokenizer))["input_ids"])


@contextmanager
def _left_padding(tok: Any) -> Iterator[None]:
    side, tok.padding_side = tok.padding_side, "left"
    try:
        yield
    finally:
        tok.padding_side = side


def _images(problem: Problem) -> list[Any]:
    from PIL import Image

    out = []
    for path in problem.images:
        with Image.open(path) as image:
            out.append(image.convert("RGB"))
    return out


def encode_prompts(processor_or_tokenizer: Any, texts: list[str],
                   images: list[list[Any]] | None = None) -> dict[str, Any]:
    """Rendered prompt ``texts`` as one left-padded batch of model inputs: ``input_ids``
    ``[B, W]``, ``attention_mask`` and, with ``images`` (PIL images per row, the same count in
    every row), what the processor makes of them (``pixel_values``, ...)."""
    tok = tokenizer_of(processor_or_tokenizer)
    special = {"add_special_tokens": not is_chat(processor_or_tokenizer)}
    with _left_padding(tok):
        if not images:
            return dict(tok(texts, padding=True, return_tensors="pt", **special))
        out = processor_or_tokenizer(text=texts, images=images, padding=True, return_tensors="pt",
                                     **special)
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


def encode(processor_or_tokenizer: Any, problems: list[Problem], regime: str) -> dict[str, Any]:
    """One left-padded batch of ``problems`` (all with the same number of images), as the
    model's inputs (:func:`encode_prompts`).

    Raises ``ArgumentError`` when a problem has an image and no image processor was given.
    """
    if problems[0].images and getattr(processor_or_tokenizer, "image_processor", None) is None:
        raise ArgumentError(
            f"problem {problems[0].id!r} has an image, but the model was given "
            f"{type(processor_or_tokenizer).__name__}, not a processor with an image "
            "processor: pass the model's AutoProcessor")
    texts = [render(processor_or_tokenizer, p, regime) for p in problems]
    images = [_images(p) for p in problems] if problems[0].images else None
    return encode_prompts(processor_or_tokenizer, texts, images)
