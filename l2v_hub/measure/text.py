"""Fluency: the perplexity of a fixed neutral text, scored as if the model had written it."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from ..loader.scale import neutral_text

__all__ = ["neutral_text", "perplexity", "written_logits"]


@torch.inference_mode()
def written_logits(model: Any, prompt: torch.Tensor, written: torch.Tensor,
                   **inputs: torch.Tensor) -> torch.Tensor:
    """Next-token logits, float32 ``[len(written) + 1, vocab]``, for ``written`` ([1, W] ids)
    read as text the model writes after ``prompt`` ([1, P] ids): the prompt in one forward, the
    written tokens in a second one on its cache, so a patch steers them exactly as it steers
    generated tokens. Row j predicts ``written[j]``; the last row, the token after them.
    ``inputs``: more of the prompt's inputs (a processor's ``pixel_values``, ...)."""
    device = next(p.device for p in model.parameters())
    prompt, written = prompt.to(device), written.to(device)
    # Qwen2-VL and its kin keep the M-RoPE offsets of the last generate call on the module and
    # apply them to the next cached forward: stale (and of another batch size) for a new text.
    for module in model.modules():
        if getattr(module, "rope_deltas", None) is not None:
            module.rope_deltas = None
    first = model(input_ids=prompt, attention_mask=torch.ones_like(prompt), use_cache=True,
                  **{k: v.to(device) for k, v in inputs.items()})
    if written.shape[1] == 0:
        return first.logits[0, -1:].float()
    # transformers 5.x names the cache `cache`; 4.x `past_key_values`.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    mask = torch.ones(1, prompt.shape[1] + written.shape[1], dtype=torch.long, device=device)
    rest = model(input_ids=written, attention_mask=mask, use_cache=True, **{name: first[name]})
    return torch.cat([first.logits[0, -1:], rest.logits[0]]).float()


def perplexity(model: Any, tokenizer: Any, text: str) -> float:
    """exp of the mean next-token negative log-likelihood of ``text`` (no unit; 1 is perfect).

    Scored as text the model writes (:func:`written_logits`): the first token is the prompt and
    the rest is written after it, so a patch steers the text's tokens exactly as it steers
    generated ones (``generated``: every token but the first). Unpatched, it equals the
    one-forward perplexity.
    """
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    logits = written_logits(model, ids[:, :1], ids[:, 1:])[:-1]
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:].to(logits.device))
    return math.exp(float(nll))
