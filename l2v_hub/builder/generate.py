"""``--generate``: the LLM answers every problem twice, once asked to think step by step and once
asked to answer directly; its two answers become the pair (the paper's Figure 1 setting).
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from .extract import input_device
from .pairs import (
    COT_INSTRUCTION,
    DIRECT_INSTRUCTION,
    ContrastivePair,
    PairSet,
    render_pair,
)

__all__ = ["generate_pairs"]


@torch.inference_mode()
def _answers(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int,
             batch_size: int, progress: bool, label: str) -> list[str]:
    special = not getattr(tokenizer, "chat_template", None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = input_device(model)  # also for an accelerate-offloaded model (weights on meta)
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=label, disable=not progress):
        rows = [tokenizer(p, add_special_tokens=special)["input_ids"] for p in prompts[start : start + batch_size]]
        width = max(map(len, rows))
        # Left padding: every row's answer starts right after its prompt.
        ids = torch.tensor([[pad or 0] * (width - len(r)) + list(r) for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        generated = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad or 0,
        )
        out += [tokenizer.decode(g[width:], skip_special_tokens=True).strip() for g in generated]
    return out


def generate_pairs(
    model: Any,
    tokenizer: Any,
    pair_set: PairSet,
    *,
    cot_tokens: int = 256,
    direct_tokens: int = 32,
    batch_size: int = 16,
    progress: bool = True,
) -> PairSet:
    """A response-style pair set whose answers the model wrote itself (greedy decoding).

    Only the problems of ``pair_set`` are used. A problem for which either answer comes out empty
    is dropped.
    """
    prompts = [render_pair(ContrastivePair(p.problem, COT_INSTRUCTION, DIRECT_INSTRUCTION),
                           "instruction", tokenizer) for p in pair_set.pairs]
    cot = _answers(model, tokenizer, [c for c, _ in prompts], cot_tokens, batch_size, progress,
                   "generating CoT answers")
    direct = _answers(model, tokenizer, [d for _, d in prompts], direct_tokens, batch_size,
                      progress, "generating direct answers")
    pairs = tuple(ContrastivePair(p.problem, c, d)
                  for p, c, d in zip(pair_set.pairs, cot, direct, strict=True) if c and d)
    return PairSet(f"{pair_set.source}+generate", "response", pairs)
