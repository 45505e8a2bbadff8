"""Finding the text decoder blocks: the right list on every model type, never the vision tower,
and a useful error when nothing fits."""

from __future__ import annotations

import pytest
import torch
import transformers
from tiny_models import (
    HIDDEN,
    LAYERS,
    build,
    forward_options,
    image_inputs,
    model_type_params,
    with_image,
)

from l2v_hub import L2VHubError
from l2v_hub.errors import ArgumentError
from l2v_hub.loader import BLOCK_PATHS, find_blocks, text_dims


def blocks_seen_by_a_text_forward(model: torch.nn.Module, tokens: int) -> set[int]:
    """ids of the modules that receive [1, tokens, HIDDEN] hidden states in a forward of a text
    prompt (behind an image where the family's forward needs one): the text decoder's blocks,
    found without any knowledge of paths."""
    model_type = model.config.model_type
    ids = torch.tensor([with_image(model_type, list(range(5, 5 + tokens)))])
    tokens = ids.shape[1]
    seen: set[int] = set()

    def record(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs.get("hidden_states")
        if isinstance(hidden, torch.Tensor) and tuple(hidden.shape) == (1, tokens, HIDDEN):
            seen.add(id(module))

    handles = [
        block.register_forward_pre_hook(record, with_kwargs=True)
        for module in model.modules() if isinstance(module, torch.nn.ModuleList)
        for block in module
    ]
    with torch.no_grad():
        model(input_ids=ids, **image_inputs(model_type, ids), **forward_options(model_type))
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("model_type", model_type_params())
def test_finds_the_text_decoder_blocks(model_type: str) -> None:
    model = build(model_type)
    found = find_blocks(model)
    assert text_dims(model).hidden_size == HIDDEN and len(found.blocks) == LAYERS
    assert found.path in BLOCK_PATHS[model_type]
    resolved = model
    for part in found.path.split("."):
        resolved = getattr(resolved, part)
    assert resolved is found.blocks
    ran = blocks_seen_by_a_text_forward(model, tokens=7)
    # Mllama skips its cross-attention block (1) without an image, as the model does.
    expected = {id(b) for i, b in enumerate(found.blocks) if not (model_type == "mllama" and i == 1)}
    if model_type == "idefics":
        # IDEFICS runs a gated cross-attention block (a list of its own) before each decoder
        # block: the decoder block's output is the residual stream after both.
        expected |= {id(b) for b in model.model.gated_cross_attn_layers}
    assert expected == ran


def test_a_vision_tower_deeper_than_the_text_decoder_is_never_chosen() -> None:
    """The steering-vectors pitfall: counting repeated module names picks the vision tower."""
    config = build("qwen2_vl").config
    config.vision_config.depth = 2 * LAYERS
    model = transformers.AutoModelForImageTextToText.from_config(config)
    found = find_blocks(model)
    assert len(found.blocks) == LAYERS and "visual" not in found.path


class Wrapped(torch.nn.Module):
    """A model type no table knows: its blocks live under an unusual name."""

    def __init__(self) -> None:
        super().__init__()
        inner = build("llama")
        self.config = inner.config
        self.config.model_type = "my_new_vlm"
        self.backbone = torch.nn.Module()
        self.backbone.stack = inner.model.layers
        self.vision = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(8))


def test_unknown_model_lists_what_was_tried_and_how_to_pass_layers_path() -> None:
    with pytest.raises(L2VHubError) as err:
        find_blocks(Wrapped())
    message = str(err.value)
    assert "model_type 'my_new_vlm'" in message and "3 text blocks" in message
    assert "model.language_model.layers (missing)" in message and "transformer.h (missing)" in message
    assert "layers_path=" in message


def test_layers_path_is_used_and_checked() -> None:
    model = Wrapped()
    assert find_blocks(model, "backbone.stack").blocks is model.backbone.stack
    with pytest.raises(ArgumentError, match="8 blocks, the text config says 3"):
        find_blocks(model, "vision")
    with pytest.raises(ArgumentError, match="a Module, not a module list"):
        find_blocks(model, "backbone")


def test_a_type_outside_the_table_is_found_through_get_decoder_or_known_paths() -> None:
    config = transformers.Qwen3Config(
        vocab_size=128, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=LAYERS,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8,
    )
    model = transformers.AutoModelForCausalLM.from_config(config)
    assert config.model_type not in BLOCK_PATHS
    assert find_blocks(model).blocks is model.model.layers


def test_a_module_without_a_transformers_config_is_refused() -> None:
    with pytest.raises(ArgumentError, match="has no transformers config"):
        text_dims(torch.nn.Linear(2, 2))
