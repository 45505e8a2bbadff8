"""The behaviour a CoT pack exists to change, measured against its random control: how many short
answers open with reasoning (:func:`~l2v_hub.measure.onset.opens_reasoning`) while staying
readable. Calibration picks its default strength with it (docs/calibration.md, "Behaviour").

An answer is **readable** when the unpatched model's perplexity of it, read after its own prompt,
is at most ``readable_ppl`` (20 by default; docs/reasoning.md shows where fluent and broken
answers of a real model fall) and under 5% of its characters are outside ASCII.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..calibration_record import BehaviourPoint
from ..loader import patch
from ..pack import Pack
from .answers import answer_problems, non_ascii_share
from .onset import opens_reasoning
from .problems import Problem
from .prompts import encode, tokenizer_of
from .stats import mcnemar_exact

__all__ = ["READABLE_PPL", "answer_perplexities", "behaviour_sweep"]

READABLE_PPL = 20.0
_NON_ASCII = 0.05


@torch.inference_mode()
def answer_perplexities(model: Any, tokenizer: Any, problems: Sequence[Problem],
                        texts: Sequence[str], regime: str) -> list[float | None]:
    """The model's perplexity of each answer ``texts[i]`` read after the prompt of
    ``problems[i]`` (``None`` for an empty answer). Call it on the UNPATCHED model: it is the
    reader that tells text from token soup."""
    tok = tokenizer_of(tokenizer)
    out: list[float | None] = []
    device = model.get_input_embeddings().weight.device
    for problem, text in zip(problems, texts, strict=True):
        written = tok(text, add_special_tokens=False)["input_ids"]
        if not written:
            out.append(None)
            continue
        prompt = encode(tokenizer, [problem], regime)["input_ids"][0].tolist()
        ids = torch.tensor([prompt + written], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prompt) - 1:-1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt):])
        out.append(math.exp(float(nll)))
    return out


def _shares(model: Any, tokenizer: Any, problems: Sequence[Problem], texts: list[str], regime: str,
            readable_ppl: float) -> tuple[list[bool], float]:
    ppl = answer_perplexities(model, tokenizer, problems, texts, regime)
    readable = [p is not None and p <= readable_ppl and non_ascii_share(t) <= _NON_ASCII
                for p, t in zip(ppl, texts, strict=True)]
    both = [r and opens_reasoning(t, p.question)
            for r, t, p in zip(readable, texts, problems, strict=True)]
    return both, sum(readable) / max(1, len(readable))


def behaviour_sweep(model: Any, tokenizer: Any, pack: Pack, control: Pack,
                    problems: Sequence[Problem], grid: Sequence[float], positions: str, *,
                    tokens: int = 10, regime: str = "direct", batch_size: int = 20,
                    readable_ppl: float = READABLE_PPL, model_id: str | None = None
                    ) -> tuple[float, float, list[BehaviourPoint]]:
    """``(unpatched share, unpatched readable share, points)``: for each strength of ``grid`` (ascending), the share of
    ``tokens``-token greedy answers to ``problems`` (prompt ``regime``) that open with reasoning
    and are readable, with ``pack`` and with ``control`` (the same push along random directions),
    both under ``positions``, and McNemar's exact p of the pack's answers against the control's
    (paired by problem; ``l2v_hub.measure.stats.mcnemar_exact``). The sweep stops after the
    first strength whose pack answers are no longer mostly readable (readable share below half the unpatched one): past breakage.
    ``model_id``: the model's Hub id, for the patches' fit check (``l2v_hub.patch``)."""
    problems = list(problems)

    def texts() -> list[str]:
        return [a.text for a in answer_problems(model, tokenizer, problems, tokens, batch_size,
                                                regime)]

    base, base_readable = _shares(model, tokenizer, problems, texts(), regime, readable_ppl)
    points = []
    for lam in grid:
        answers = {}
        for name, p in (("pack", pack), ("control", control)):
            with patch(model, p, strength=lam, positions=positions, model_id=model_id,
                       strict=False):
                answers[name] = texts()
        ours, readable = _shares(model, tokenizer, problems, answers["pack"], regime, readable_ppl)
        theirs, _ = _shares(model, tokenizer, problems, answers["control"], regime, readable_ppl)
        won = sum(a and not b for a, b in zip(ours, theirs, strict=True))
        lost = sum(b and not a for a, b in zip(ours, theirs, strict=True))
        points.append(BehaviourPoint(lam, positions, round(sum(ours) / len(ours), 4),
                                     round(sum(theirs) / len(theirs), 4), round(readable, 4),
                                     float(f"{mcnemar_exact(won, lost):.4g}")))
        if readable < base_readable / 2:
            break
    return round(sum(base) / max(1, len(base)), 4), round(base_readable, 4), points
