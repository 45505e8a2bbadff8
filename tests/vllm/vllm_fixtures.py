"""A tiny random Qwen2 saved to a folder with a byte tokenizer, two packs for it, and the
transformers + ``l2v_hub.patch`` reference every vLLM result is compared with (float32, greedy).

vLLM's CPU attention needs a head size it has kernels for (32 here) and a block size that is a
multiple of 32; engines are shared per module (each start takes 0.5-2 min on 2 cores).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

from l2v_hub import patch
from l2v_hub.metadata import Hook

# Read by vLLM when an engine starts, so set before any: 1 GiB of KV cache per engine, and a
# fresh torch.compile cache per test session (a graph compiled by an earlier run, of an older
# plugin, must never stand in for this one's).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", tempfile.mkdtemp(prefix="l2v-vllm-cache-"))

MODEL_ID = "tiny/qwen2-vllm"
HIDDEN, LAYERS, VOCAB = 64, 3, 262
BLOCK = 32
PROMPTS: tuple[tuple[int, ...], ...] = (
    tuple(range(10, 30)), tuple(range(40, 47)), tuple(range(100, 141)),
)
NEW_TOKENS = 8


def tiny_qwen2(folder: Path) -> Path:
    """Save a random float32 Qwen2 (head size 32, 3 blocks) and a byte tokenizer to ``folder``."""
    from tiny_llm import byte_tokenizer

    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=LAYERS,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
        torch_dtype="float32",
    )
    model = transformers.Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # a wider spread of logits than the default init: fewer exact ties
        model.lm_head.weight.mul_(20.0)
    model.save_pretrained(folder)
    byte_tokenizer().save_pretrained(folder)
    return folder


def make_pack(folder: Path, *, name: str, op: str, positions: str, seed: int, scale: float,
              strength: float, layers: Sequence[int], model_id: str = MODEL_ID,
              model_type: str = "qwen2") -> Path:
    """A calibrated pack for a tiny model of ``HIDDEN`` x ``LAYERS`` (the Qwen2 unless
    ``model_id`` / ``model_type`` say otherwise; s_i = ``scale`` on every block), saved to
    ``folder``."""
    from conftest import random_pack

    pack = random_pack(HIDDEN, LAYERS, target_id=model_id, model_type=model_type, seed=seed,
                       scale=scale)
    pack = dataclasses.replace(pack, name=name, hook=Hook(op=op, positions=positions),
                               defaults=dataclasses.replace(pack.defaults, strength=strength,
                                                            layers=tuple(layers)))
    pack.save_pretrained(folder)
    return folder


def reference(model_dir: Path, prompts: Sequence[Sequence[int] | Mapping[str, Any]],
              pack_dir: Path | None = None, *, model_id: str = MODEL_ID,
              model_class: Any = transformers.AutoModelForCausalLM,
              **options: Any) -> list[tuple[list[int], list[float]]]:
    """Greedy tokens and their log-probabilities from transformers ``generate`` (float32), each
    prompt alone, patched with ``pack_dir`` (``options``: strength, positions) when given.
    A prompt is token ids, or a processor's output for ``model_class`` (``input_ids`` [1, T],
    ``pixel_values``, ...)."""
    model = model_class.from_pretrained(model_dir, dtype=torch.float32).eval()
    handle = None if pack_dir is None else patch(model, pack_dir, model_id=model_id, **options)
    results = []
    try:
        for prompt in prompts:
            if isinstance(prompt, Mapping):
                inputs = dict(prompt)
            else:
                ids = torch.tensor([list(prompt)])
                inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            with torch.no_grad():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS,
                                     min_new_tokens=NEW_TOKENS, output_logits=True,
                                     return_dict_in_generate=True, pad_token_id=0)
            tokens = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
            logprobs = [torch.log_softmax(step[0].float(), -1)[t].item()
                        for step, t in zip(out.logits, tokens, strict=True)]
            results.append((tokens, logprobs))
    finally:
        if handle is not None:
            handle.remove()
    return results


def engine(model_dir: Path, additional_config: dict[str, Any] | None, **options: Any) -> Any:
    """A vLLM ``LLM`` on the CPU for the tiny model, float32, prefix caching on."""
    from vllm import LLM

    settings: dict[str, Any] = dict(
        dtype="float32", block_size=BLOCK, max_model_len=256, max_num_seqs=8, seed=0,
        enable_prefix_caching=True, skip_tokenizer_init=False,
    )
    settings.update(options)
    if additional_config is not None:
        settings["additional_config"] = additional_config
    return LLM(str(model_dir), **settings)


def close(llm: Any) -> None:
    """Shut the engine's processes down now, not at interpreter exit."""
    llm.llm_engine.engine_core.shutdown()
    del llm
    gc.collect()


def generate(llm: Any, prompts: Sequence[Sequence[int] | Mapping[str, Any]],
             extra: Sequence[dict[str, Any] | None]) -> list[Any]:
    """vLLM's ``RequestOutput`` of each prompt (token ids, or a vLLM prompt dict such as
    ``{"prompt": ..., "multi_modal_data": ...}``), greedy, all in one batch, request i with
    ``extra_args`` ``extra[i]``."""
    from vllm import SamplingParams

    params = [SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, min_tokens=NEW_TOKENS,
                             logprobs=0, extra_args=e, ignore_eos=True) for e in extra]
    return llm.generate([p if isinstance(p, Mapping) else {"prompt_token_ids": list(p)}
                         for p in prompts], params, use_tqdm=False)


def sampled(completion: Any) -> tuple[list[int], list[float]]:
    """A vLLM ``CompletionOutput``'s tokens and the log-probability of each."""
    return (list(completion.token_ids),
            [step[t].logprob for step, t in zip(completion.logprobs, completion.token_ids,
                                                strict=True)])


def run(llm: Any, prompts: Sequence[Sequence[int] | Mapping[str, Any]],
        extra: Sequence[dict[str, Any] | None]) -> list[tuple[list[int], list[float]]]:
    """Greedy tokens and their log-probabilities from vLLM (``generate``)."""
    return [sampled(out.outputs[0]) for out in generate(llm, prompts, extra)]


def assert_close(got: Sequence[tuple[list[int], list[float]]],
                 want: Sequence[tuple[list[int], list[float]]], atol: float = 1e-4) -> None:
    """Same greedy tokens; log-probabilities within ``atol``."""
    for i, ((tokens, logprobs), (ref_tokens, ref_logprobs)) in enumerate(
            zip(got, want, strict=True)):
        assert tokens == ref_tokens, f"request {i}: vLLM {tokens} != transformers {ref_tokens}"
        worst = max(abs(a - b) for a, b in zip(logprobs, ref_logprobs, strict=True))
        assert worst <= atol, f"request {i}: log-probabilities differ by {worst:.2e}"
