"""Coverage of transformers' image-text-to-text model types: every one is in the explicit block
table or refused with its reason, so a transformers upgrade cannot silently lose coverage; every
table entry finds the text decoder's blocks on a model built from transformers' default config
(on the meta device: structure only, no weights); refused types fail up front with the reason.
The behaviour of steering (cache, padding, removal) is checked per family in test_loader_patch.py
on the tiny models of tests/tiny_models.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import transformers
from conftest import random_pack
from packaging.version import Version
from tiny_families import OVERRIDES, tiny_config
from tiny_models import (
    CONFIGS,
    HIDDEN,
    IMAGE_PREFIX,
    LAYERS,
    build,
    image_inputs,
    model_type_params,
    transformers_version,
    with_image,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

import l2v_hub
from l2v_hub.errors import ArgumentError
from l2v_hub.loader.families import BLOCK_PATHS, NEEDS_IMAGE, PLACEHOLDER_ID, REFUSED, UNVERIFIED
from l2v_hub.loader.layers import find_blocks

IMAGE_TEXT_TO_TEXT = sorted(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def test_every_image_text_to_text_type_is_supported_or_refused_with_a_reason() -> None:
    listed = set(BLOCK_PATHS) | set(REFUSED) | set(UNVERIFIED)
    unlisted = [t for t in IMAGE_TEXT_TO_TEXT if t not in listed]
    assert not unlisted, (
        f"transformers {transformers.__version__} has image-text-to-text model types the loader "
        f"neither supports nor refuses: {unlisted}. Add each to BLOCK_PATHS (with a test) or to "
        "REFUSED with its reason in l2v_hub/loader/families.py, and to docs/loader.md"
    )
    assert not set(BLOCK_PATHS) & set(REFUSED) and not set(UNVERIFIED) & (set(BLOCK_PATHS) | set(REFUSED))
    assert all(reason.strip() for reason in [*REFUSED.values(), *UNVERIFIED.values()])


def test_docs_list_every_family_with_its_status() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "loader.md").read_text(encoding="utf-8")
    section = docs[docs.index("### Every image-text-to-text family"):]
    missing = [t for t in [*BLOCK_PATHS, *REFUSED, *UNVERIFIED]
               if f"`{t}`" not in section and t in IMAGE_TEXT_TO_TEXT]
    assert not missing, f"docs/loader.md's family list lacks {missing}"


def test_an_unverified_type_is_not_refused_but_warned_about() -> None:
    # chameleon worked through the fallbacks before the table existed: it must keep working.
    model = torch.nn.Module()
    model.config = transformers.PretrainedConfig()
    model.config.model_type = "chameleon"
    model.config.num_hidden_layers, model.config.hidden_size = 2, 2
    model.model = torch.nn.Module()
    model.model.language_model = torch.nn.Module()
    model.model.language_model.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 2)
    with pytest.warns(UserWarning, match="chameleon.*not verified"):
        found = find_blocks(model)
    assert found.path == "model.language_model.layers"


def _shrunk(config: transformers.PretrainedConfig) -> None:
    """3 blocks in every depth field, so that a meta build is quick."""
    for sub in [config, *(getattr(config, k) for k in list(vars(config)) if k.endswith("_config"))]:
        for name in ("num_hidden_layers", "depth", "num_layers"):
            if isinstance(getattr(sub, name, None), int) and getattr(sub, name) > 3:
                setattr(sub, name, 3)


def meta_model(model_type: str) -> torch.nn.Module:
    """The model of transformers' default config for ``model_type`` (the tiny config of
    tests/tiny_models.py for the families it has: some default configs of 4.51 do not build), on
    the meta device; shrunk to 3 blocks where the config allows it (some tie fields to the depth)."""
    for shrink in (True, False):
        tiny = CONFIGS.get(model_type)
        config = tiny() if tiny is not None else transformers.AutoConfig.for_model(model_type)
        if shrink:
            _shrunk(config)
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = transformers.AutoModelForImageTextToText.from_config(config)
            find_blocks(model)
            return model
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, l2v_hub.L2VHubError):
            if not shrink:
                raise
    raise AssertionError("unreachable")


# Default configs that do not build in an older transformers (explicit, never a silent skip).
DEFAULT_BROKEN = {
    "llava_onevision": (transformers_version < Version("4.52"), "transformers<4.52's default "
                        "LlavaOnevisionConfig does not build (vision embed_dim 1152, 14 heads)"),
}


@pytest.mark.parametrize("model_type", [
    pytest.param(t, marks=[pytest.mark.skipif(DEFAULT_BROKEN[t][0], reason=DEFAULT_BROKEN[t][1])]
                 if t in DEFAULT_BROKEN else [])
    for t in IMAGE_TEXT_TO_TEXT if t in BLOCK_PATHS
])
def test_every_table_entry_finds_the_text_blocks_of_the_default_model(model_type: str) -> None:
    model = meta_model(model_type)
    found = find_blocks(model)
    assert found.path in BLOCK_PATHS[model_type]  # from the table, not a fallback
    assert len(found.blocks) == model.config.get_text_config().num_hidden_layers


# Refused for what they are (not merely unverified), and buildable from their default config.
REFUSED_HERE = [t for t in IMAGE_TEXT_TO_TEXT if t in REFUSED
                and t not in ("evolla", "pi0", "vision-encoder-decoder", "pixtral")]  # no default model


@pytest.mark.parametrize("model_type", REFUSED_HERE)
def test_a_refused_type_fails_up_front_with_its_reason(model_type: str) -> None:
    # Qwen4-Exp's default config does not build (no indexer sizes): the tiny one does.
    if model_type in OVERRIDES:
        config = tiny_config(model_type)
    else:
        config = transformers.AutoConfig.for_model(model_type)
        _shrunk(config)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForImageTextToText.from_config(config)
    with pytest.raises(ArgumentError, match=rf"model_type '{model_type}'.*not supported|instead"):
        find_blocks(model)


@pytest.mark.parametrize("model_type", ["florence2", "pix2struct"])
def test_an_encoder_decoder_model_is_refused_before_any_hook_even_with_layers_path(
    model_type: str,
) -> None:
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        pytest.skip(f"{model_type} is not in transformers {transformers.__version__}")
    config = transformers.AutoConfig.for_model(model_type)
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForImageTextToText.from_config(config)
    text = model.config.get_text_config()
    pack = random_pack(text.hidden_size, text.num_hidden_layers)
    for path in (None, "model.decoder.layers"):
        with pytest.raises(ArgumentError, match="encoder-decoder"):
            l2v_hub.patch(model, pack, layers_path=path)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


HYPER_CONNECTIONS = [t for t in ("glm5_next", "hy_v4_vl", "qwen4_exp") if t in IMAGE_TEXT_TO_TEXT]


@pytest.mark.parametrize("model_type", HYPER_CONNECTIONS)
def test_blocks_with_several_residual_streams_are_refused_and_named_at_the_forward(
    model_type: str,
) -> None:
    """Hyper-connection blocks output several residual streams: refused up front, and with an
    explicit layers_path the first forward says why instead of blaming the caller."""
    model = tiny_model(model_type)
    assert "hyper-connections" in REFUSED[model_type]
    pack = random_pack(32, 3)
    with pytest.raises(ArgumentError, match="hyper-connections"):
        l2v_hub.patch(model, pack)
    with (l2v_hub.patch(model, pack, layers_path="model.language_model.layers", layers=[0]),
          pytest.raises(l2v_hub.L2VHubError, match=r"several residual streams")):
        model(input_ids=torch.tensor([[5, 6, 7]]))


def tiny_model(model_type: str) -> torch.nn.Module:
    config = tiny_config(model_type)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return transformers.AutoModelForImageTextToText.from_config(config).eval()


class TinyTokenizer:
    """Text to ids of the tiny models' vocabulary (128): BOS, then one id per character."""

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [1, *(6 + ord(c) % 100 for c in text)]}


@pytest.mark.parametrize("model_type", [p for p in model_type_params()
                                        if p.values[0] in NEEDS_IMAGE])
def test_s_i_is_measured_on_the_text_alone_where_every_forward_needs_an_image(
        model_type: str) -> None:
    """Kosmos-2, IDEFICS, BLIP-2 and InstructBLIP(Video) raise on a forward without an image
    (Kosmos-2: "You have to specify either pixel_values or image_embeds"; BLIP-2: "missing 1
    required positional argument: 'pixel_values'"), which patch() runs to measure s_i. The
    measurement gives the same states as the text model alone (Kosmos-2, with an image no token
    sees; BLIP-2 and InstructBLIP, run on their language model: the text has no placeholder for
    the query outputs), or as with another image (IDEFICS, with an image no token sees)."""
    from l2v_hub.loader.scale import block_outputs, neutral_text, token_measures

    model = build(model_type)
    ids = torch.tensor([TinyTokenizer()(neutral_text()[0])["input_ids"]])
    if model_type != "idefics":
        text_model = model.text_model if model_type == "kosmos-2" else model.language_model
        reference = block_outputs(text_model, ids)
    else:
        blocks = find_blocks(model).blocks
        reference = []
        handles = [b.register_forward_hook(lambda m, a, out: reference.append(
            (out[0] if isinstance(out, tuple) else out).float())) for b in blocks]
        with torch.no_grad():
            model(input_ids=ids, use_cache=False, pixel_values=torch.rand(1, 1, 3, 8, 8),
                  image_attention_mask=torch.zeros(1, ids.shape[1], 1, dtype=torch.long))
        for handle in handles:
            handle.remove()
    want = torch.tensor([token_measures(o[0])["token_spread"] for o in reference])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the pack's target id is not the tiny model's
        handle = l2v_hub.patch(model, random_pack(HIDDEN, LAYERS, scale=None),
                               tokenizer=TinyTokenizer())
    assert handle.scale_origin == "measured"
    torch.testing.assert_close(handle.scales, want, rtol=1e-6, atol=0)
    handle.remove()


QUERY_TOKEN_FAMILIES = [p for p in model_type_params() if p.values[0] in PLACEHOLDER_ID]


@pytest.mark.parametrize("model_type", QUERY_TOKEN_FAMILIES)
def test_a_query_token_model_without_a_placeholder_id_is_refused_naming_the_field(
        model_type: str) -> None:
    """BLIP-2 / InstructBLIP(Video) are steered where the query outputs replace placeholder tokens
    of input_ids. With no placeholder id in the config, transformers 4.51 joins the query outputs
    in front of the text inside forward (the logits are wider than input_ids) and 5.x raises:
    refused up front, with layers_path= too, naming the field and what to set."""
    model = build(model_type)
    field = PLACEHOLDER_ID[model_type]
    setattr(model.config, field, None)
    text = torch.tensor([[1, 5, 6, 7]])
    images = image_inputs(model_type, torch.tensor([with_image(model_type, [5])]))
    if transformers_version < Version("5"):
        with torch.no_grad():
            wide = model(input_ids=text, **images).logits
        assert wide.shape[1] == text.shape[1] + len(IMAGE_PREFIX[model_type])
    else:
        with pytest.raises(AttributeError):
            model(input_ids=text, **images)
    pack = random_pack(HIDDEN, LAYERS)
    refused = rf"model_type '{model_type}'.*no {field}.*wider than input_ids.*Set config\.{field}"
    for path in (None, find_blocks(build(model_type)).path):
        with pytest.raises(ArgumentError, match=refused):
            l2v_hub.patch(model, pack, layers_path=path)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_an_instructblip_on_a_llama_decoder_finds_the_llama_blocks() -> None:
    """The InstructBLIP checkpoints run Vicuna (a Llama), not OPT: its blocks are the Llama's."""
    config = tiny_config("instructblip")
    config.text_config = transformers.LlamaConfig(**CONFIGS["llama"]().to_dict())
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForImageTextToText.from_config(config)
    found = find_blocks(model)
    assert found.path == "language_model.model.layers" and found.path in BLOCK_PATHS["instructblip"]
    assert found.blocks is model.language_model.model.layers and len(found.blocks) == LAYERS
