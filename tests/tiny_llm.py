"""Tiny offline models for the builder tests: a byte-level tokenizer, a random Llama, a Qwen2-VL
config. Built from code in milliseconds; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2VLConfig

__all__ = [
    "CHAT_TEMPLATE",
    "REPO_CACHE",
    "byte_tokenizer",
    "tiny_llama",
    "tiny_qwen2_vl_config",
    "word_tokenizer",
]

# Dequantized GGUF copies live in the repository's gitignored .cache/, shared by test runs.
REPO_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "l2v_hub"

# A minimal ChatML-style template, enough to exercise the chat-templated path.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]


def byte_tokenizer(*, chat_template: bool = False, padding_side: str = "right") -> PreTrainedTokenizerFast:
    """Every byte is one token (ids 6..261), so any text tokenizes; specials are ids 0..5."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({ch: len(SPECIALS) + i for i, ch in enumerate(sorted(alphabet))})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        padding_side=padding_side,
    )
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def word_tokenizer(size: int = 100) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose ids stay below ``size`` (a tiny VLM keeps its image tokens
    above that): specials 0..5, then the most common English words; every other word is <unk>."""
    words = ("the a an and of to in is are was it on at for with as by from that this be or not "
             "one two three four five six seven eight nine ten how many what much each more than "
             "then so if he she they his her tom anna has have buys costs dollars per hour minutes "
             "total left old years price pays sells water tank boxes apples answer question step")
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, "<unk>"])}
    for word in words.split():
        if len(vocab) < size:
            vocab.setdefault(word, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def tiny_llama(*, hidden: int = 32, layers: int = 4, seed: int = 0, vocab: int = 262) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


def tiny_qwen2_vl_config(folder: Path, *, hidden: int = 48, layers: int = 6) -> Path:
    """Write only config.json of a tiny Qwen2-VL (its text decoder: ``hidden`` x ``layers``)."""
    text = {"hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": 2 * hidden,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
            "bos_token_id": 1, "eos_token_id": 2}
    config = Qwen2VLConfig(text_config=text, vision_config={"depth": 2, "embed_dim": 16,
                                                             "num_heads": 2, "hidden_size": hidden})
    config.save_pretrained(folder)
    return folder
