"""Fluency: the perplexity of a fixed neutral text, scored as if the model had written it."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from ..loader.scale import neutral_text

__all__ = ["neutral_text", "perplexity"]


@torch.inference_mode()
def perplexity(model: Any, tokenizer: Any, text: str) -> float:
    """exp of the mean next-token negative log-likelihood of ``text`` (no unit; 1 is perfect).

    Scored as text the model writes: the first token is the prompt and the rest goes in a second
    forward on its cache, so a patch steers the text's tokens exactly as it steers generated ones
    (``generated``: every token but the first). Unpatched, it equals the one-forward perplexity.
    """
    device = next(p.device for p in model.parameters())
    ids = torch.tensor([tokenizer(text)["input_ids"]], device=device)
    # Qwen2-VL and its kin keep the M-RoPE offsets of the last generate call on the module and
    # apply them to the next cached forward: stale (and of another batch size) for a new text.
    for module in model.modules():
        if getattr(module, "rope_deltas", None) is not None:
            module.rope_deltas = None
    first = model(input_ids=ids[:, :1], attention_mask=torch.ones_like(ids[:, :1]), use_cache=True)
    # transformers 5.x names the cache `cache`; 4.x `past_key_values`.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    rest = model(input_ids=ids[:, 1:], attention_mask=torch.ones_like(ids), use_cache=True,
                 **{name: first[name]})
    logits = torch.cat([first.logits[0, -1:], rest.logits[0, :-1]]).float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    return math.exp(float(nll))
