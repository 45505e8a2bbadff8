"""l2v_hub.demo.vlm: tiny random LLMs wrapped as LLaVA-OneVision / Gemma 3 folders, loaded back
through AutoModelForImageTextToText and AutoProcessor (offline), text and image rows."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tiny_llm import byte_tokenizer
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from l2v_hub.demo import vlm
from l2v_hub.errors import L2VHubError

FAMILIES = ("llava_onevision", "gemma3")
# Tokens per 64px image: LLaVA's base crop (16) + the tile unpadded to the image (16 for a square)
# + one newline per tile row (4); Gemma's (64/16)^2 soft tokens.
SQUARE_TOKENS = {"llava_onevision": 36, "gemma3": 16}


def tiny_qwen2(vocab: int = 300) -> Qwen2ForCausalLM:
    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Qwen2ForCausalLM(config).eval()


def tiny_gemma3() -> Gemma3ForCausalLM:
    torch.manual_seed(2)
    config = Gemma3TextConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=8, sliding_window=8,
                              layer_types=["sliding_attention", "full_attention"],  # both kinds
                              pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return Gemma3ForCausalLM(config).eval()


def bos_tokenizer() -> PreTrainedTokenizerFast:
    """No chat template and a BOS on every encoding, like the Gemma 3 270M base tokenizer."""
    tok = byte_tokenizer()
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)])
    return tok


def lm_and_tokenizer(family: str) -> tuple[Any, PreTrainedTokenizerFast]:
    if family == "llava_onevision":
        return tiny_qwen2(), byte_tokenizer(chat_template=True)
    return tiny_gemma3(), bos_tokenizer()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vlm")
    return {f: vlm.save_vlm(*lm_and_tokenizer(f), f, root / f, model_id=f"test/{f}") for f in FAMILIES}


def load(folder: Path) -> tuple[Any, Any]:
    return AutoModelForImageTextToText.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def image_prompt(processor: Any, question: str) -> str:
    return processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
        add_generation_prompt=True, tokenize=False)


def encode(processor: Any, questions: list[str], images: list[Image.Image]) -> dict[str, torch.Tensor]:
    texts = [image_prompt(processor, q) for q in questions]
    # l2v-hub tokenizes chat prompts without special tokens: the template carries the BOS.
    return dict(processor(text=texts, images=[[im] for im in images], padding=True,
                          return_tensors="pt", add_special_tokens=False))


def noise(width: int, height: int, seed: int) -> Image.Image:
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_text_logits_and_prompts_are_the_llms(folders: dict[str, Path], family: str) -> None:
    lm, tok = lm_and_tokenizer(family)
    model, processor = load(folders[family])
    assert model.config.model_type == family
    ids = tok("How many apples are left?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want, got = lm(ids).logits, model(input_ids=ids).logits
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # A text-only chat prompt renders as the LLM's: its own template, or the base-model prompt.
    q = "What is 2 + 3?"
    for content in (q, [{"type": "text", "text": q}]):
        text = processor.apply_chat_template([{"role": "user", "content": content}],
                                             add_generation_prompt=True, tokenize=False)
        if tok.chat_template:
            assert text == tok.apply_chat_template([{"role": "user", "content": q}],
                                                   add_generation_prompt=True, tokenize=False)
        else:
            assert text == f"<s>Question: {q}\nAnswer:"


@pytest.mark.parametrize("family", FAMILIES)
def test_image_rows_left_padded_generate_and_match_one_by_one(folders: dict[str, Path], family: str) -> None:
    model, processor = load(folders[family])
    images = [noise(64, 64, 0), noise(96, 40, 1)]  # LLaVA: 36 and fewer image tokens
    questions = ["How many?", "What colour is the biggest shape in the picture?"]
    batch = encode(processor, questions, images)
    image_id = model.config.image_token_id
    counts = (batch["input_ids"] == image_id).sum(1).tolist()
    assert counts[0] == SQUARE_TOKENS[family]
    assert batch["attention_mask"][:, 0].tolist() == [0, 1]  # the short row is padded on the left
    with torch.no_grad():
        last = model(**batch).logits[:, -1]
        for row in range(2):
            alone = encode(processor, questions[row:row + 1], images[row:row + 1])
            assert (alone["input_ids"] == image_id).sum().item() == counts[row]
            torch.testing.assert_close(model(**alone).logits[0, -1], last[row], rtol=0, atol=1e-4)
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    assert out[:, -4:].max().item() < model.config.text_config.vocab_size


@pytest.mark.parametrize("family", FAMILIES)
def test_the_image_changes_the_logits(folders: dict[str, Path], family: str) -> None:
    model, processor = load(folders[family])
    with torch.no_grad():
        a, b = (model(**encode(processor, ["What is this?"], [im])).logits[0, -1]
                for im in (noise(64, 64, 0), noise(64, 64, 5)))
    assert (a - b).abs().max().item() > 1e-4


def test_tokens_sit_inside_the_embedding_and_the_folder_is_complete(folders: dict[str, Path]) -> None:
    for family, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        processor = AutoProcessor.from_pretrained(folder)
        tok = processor.tokenizer
        ids = {name: tok.convert_tokens_to_ids(t) for name, t in vlm._TOKENS[family].items()}
        assert config["image_token_index"] == ids["image_token"]
        assert max(ids.values()) < config["text_config"]["vocab_size"] == 300  # no resize
        assert tok.padding_side == "left"
        assert "test/" + family in (folder / "README.md").read_text()
        assert {p.name for p in folder.iterdir()} >= set(vlm._REQUIRED)
        plain = folder.with_name(folder.name + "-plain")
        plain.mkdir()  # save_vlm's folder has the mode any new folder gets (not mkdtemp's 0700)
        assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert json.loads((folders["gemma3"] / "config.json").read_text())["mm_tokens_per_image"] == 16


def test_a_gguf_filler_row_takes_the_image_token(tmp_path: Path) -> None:
    # A GGUF tokenizer fills every embedding row, the spare ones with "[PAD<id>]".
    base = byte_tokenizer(chat_template=True)
    vocab = dict(base.get_vocab())
    vocab.update({f"[PAD{i}]": i for i in range(len(vocab), 300)})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    tok.chat_template = base.chat_template
    folder = vlm.save_vlm(tiny_qwen2(), tok, "llava_onevision", tmp_path / "v", model_id="t/f")
    saved = AutoProcessor.from_pretrained(folder).tokenizer
    assert (saved.convert_tokens_to_ids("<image>"), saved.convert_tokens_to_ids("<video>")) == (262, 263)
    assert "[PAD262]" not in saved.get_vocab() and "[PAD264]" in saved.get_vocab()
    assert AutoModelForImageTextToText.from_pretrained(folder).config.text_config.vocab_size == 300


def test_a_full_vocabulary_grows_the_embedding_and_keeps_the_llms_rows(tmp_path: Path) -> None:
    lm, tok = tiny_qwen2(vocab=262), byte_tokenizer(chat_template=True)  # every row taken
    folder = vlm.save_vlm(lm, tok, "llava_onevision", tmp_path / "v", model_id="t/g")
    model, processor = load(folder)
    assert model.config.text_config.vocab_size == 264
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == 262
    ids = tok("some words", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits[..., :262], lm(ids).logits, rtol=0, atol=1e-5)


def test_the_vision_tower_is_seeded_and_leaves_the_global_rng(tmp_path: Path) -> None:
    lm, tok = tiny_qwen2(), byte_tokenizer(chat_template=True)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    weights = [load_file(vlm.save_vlm(lm, tok, "llava_onevision", tmp_path / str(i), model_id="t/s",
                                      seed=seed) / "model.safetensors") for i, seed in enumerate((0, 0, 1))]
    assert torch.equal(torch.get_rng_state(), state)
    key = next(k for k in weights[0] if "vision_tower" in k and k.endswith("weight"))
    assert torch.equal(weights[0][key], weights[1][key])
    assert not torch.equal(weights[0][key], weights[2][key])


def test_save_refuses_an_existing_folder_and_an_unknown_family(tmp_path: Path) -> None:
    lm, tok = tiny_qwen2(), byte_tokenizer(chat_template=True)
    (tmp_path / "taken").mkdir()
    with pytest.raises(L2VHubError, match="already exists"):
        vlm.save_vlm(lm, tok, "llava_onevision", tmp_path / "taken", model_id="t/x")
    with pytest.raises(L2VHubError, match="family must be one of"):
        vlm.save_vlm(lm, tok, "qwen2_vl", tmp_path / "new", model_id="t/x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no staging folder left


def test_the_cached_folder_is_built_once_and_rebuilt_when_incomplete(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def tiny_loader(cache_dir: Path) -> tuple[Any, Any]:
        calls.append(cache_dir)
        return tiny_qwen2(), byte_tokenizer(chat_template=True)

    monkeypatch.setattr(vlm, "load_qwen_05b", tiny_loader)
    folder = vlm.qwen_05b_vlm(tmp_path)
    assert folder == tmp_path / "vlm" / "llava-onevision-qwen2.5-coder-0.5b-demo"
    assert vlm.qwen_05b_vlm(tmp_path) == folder and len(calls) == 1
    (folder / "model.safetensors").unlink()  # as if someone pruned it
    assert vlm.qwen_05b_vlm(tmp_path) == folder and len(calls) == 2
    assert (folder / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "vlm").iterdir()] == [folder.name]


def test_a_fresh_offline_process_loads_both_folders(folders: dict[str, Path]) -> None:
    script = (
        "import sys, torch\n"
        "from PIL import Image\n"
        "from transformers import AutoModelForImageTextToText, AutoProcessor\n"
        "for folder in sys.argv[1:]:\n"
        "    m = AutoModelForImageTextToText.from_pretrained(folder).eval()\n"
        "    p = AutoProcessor.from_pretrained(folder)\n"
        "    msg = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': 'Hi?'}]}]\n"
        "    text = p.apply_chat_template(msg, add_generation_prompt=True, tokenize=False)\n"
        "    enc = p(text=[text], images=[[Image.new('RGB', (64, 64))]], return_tensors='pt')\n"
        "    out = m.generate(**enc, max_new_tokens=2, do_sample=False)\n"
        "    print(type(m).__name__, type(p).__name__, out.shape[1] - enc['input_ids'].shape[1])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script, *map(str, folders.values())], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:2] == ["LlavaOnevisionForConditionalGeneration LlavaNextProcessor 2",
                                           "Gemma3ForConditionalGeneration Gemma3Processor 2"]
